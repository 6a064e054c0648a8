#!/bin/sh
# HTTPS when a certificate is mounted: with fullchain.pem and privkey.pem in TLS_DIR, turn on the
# `#tls` lines of the rendered template (HTTPS on NGINX_TLS_PORT, plain HTTP redirected to it);
# without them, plain HTTP as before. The nginx image runs it before nginx starts, after it has
# rendered the template (docker-compose.yml mounts it into /docker-entrypoint.d).
set -eu
conf=${NGINX_CONF:-/etc/nginx/conf.d/default.conf}
dir=${TLS_DIR:-/etc/nginx/certs}
if [ -f "$dir/fullchain.pem" ] && [ -f "$dir/privkey.pem" ]; then
  sed -i 's/^\([[:space:]]*\)#tls /\1/' "$conf"
  echo "volcimage: HTTPS with $dir/fullchain.pem"
else
  echo "volcimage: no certificate in $dir, plain HTTP only"
fi
