# Stand-in for python:3.11-slim (no image registry on the test machines): Debian bookworm's
# CPython 3.11 with venv and `python` on PATH; pip trusts the build host's CA bundle, the only
# way the package index is reached from there.
FROM volcimage-standin/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /usr/local/share/host-ca.crt
RUN printf '[global]\ncert = /usr/local/share/host-ca.crt\n' > /etc/pip.conf
CMD ["python3"]
