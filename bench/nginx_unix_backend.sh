#!/bin/sh
# server_cmd for bench/proxy: nbgate's `process` backend starts this with
#   nginx_unix_backend.sh {sock} {user} WWW_ROOT WORKDIR FAKE_BACKEND
# For user "wsbench" it runs the WebSocket echo (tests/helpers/fake_backend.py)
# on the socket; for anyone else nginx (1 worker) serving WWW_ROOT on
# unix:{sock}, the same static file the direct/nginx/CHP runs use.
set -eu
sock=$1 user=$2 www=$3 work=$4 fake=$5
if [ "$user" = wsbench ]; then
	exec /usr/bin/python3 "$fake" --sock "$sock" --user "$user" --base-url "/user/$user/" \
		--record /dev/null --record-dir "$work/records"
fi
d="$work/backend-$user"
mkdir -p "$d/logs" "$d/tmp"
cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d/tmp/cb;
	proxy_temp_path $d/tmp/p;
	fastcgi_temp_path $d/tmp/f;
	uwsgi_temp_path $d/tmp/u;
	scgi_temp_path $d/tmp/s;
	keepalive_requests 1000000;
	server {
		listen unix:$sock;
		root $www;
	}
}
EOF
rm -f "$sock"
exec /usr/sbin/nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
