# Stand-in for nginx:alpine: Debian's nginx with the official image's template rendering, and
# BusyBox's wget as Alpine has it.
FROM volcimage-standin/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light gettext-base busybox \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -s /bin/busybox /usr/local/bin/wget \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /docker-entrypoint.sh
ENTRYPOINT ["/docker-entrypoint.sh"]
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
