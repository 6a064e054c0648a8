#!/bin/sh
# What the official nginx image does at start with /etc/nginx/templates: each *.template through
# envsubst into conf.d, replacing only the defined variables that NGINX_ENVSUBST_FILTER matches.
set -eu
if [ "${1:-}" = nginx ] && [ -d /etc/nginx/templates ]; then
  filter=${NGINX_ENVSUBST_FILTER:-}
  names=$(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null)
  defined=$(printf '${%s} ' $names)
  for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    out=/etc/nginx/conf.d/$(basename "$template" .template)
    envsubst "$defined" <"$template" >"$out"
  done
fi
exec "$@"
