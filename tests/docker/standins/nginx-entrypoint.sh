#!/bin/sh
# What the official nginx image does at start: each /etc/nginx/templates/*.template through
# envsubst into conf.d (only the defined variables that NGINX_ENVSUBST_FILTER matches), then the
# executable scripts of /docker-entrypoint.d in order.
set -eu
if [ "${1:-}" = nginx ]; then
  if [ -d /etc/nginx/templates ]; then
    filter=${NGINX_ENVSUBST_FILTER:-}
    names=$(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null)
    defined=$(printf '${%s} ' $names)
    for template in /etc/nginx/templates/*.template; do
      [ -f "$template" ] || continue
      envsubst "$defined" <"$template" >"/etc/nginx/conf.d/$(basename "$template" .template)"
    done
  fi
  for script in /docker-entrypoint.d/*.sh; do
    if [ -x "$script" ]; then "$script"; fi
  done
fi
exec "$@"
