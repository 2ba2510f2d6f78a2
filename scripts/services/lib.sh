# lib.sh is the lifecycle shared by the test-service scripts beside it.
# A script sets name, port and port_var, defines answers (does something
# answer on the port?), do_install and do_env, and a do_start that ends in
# `launch <command...>`; then it calls `service_main "$@"`.
#
# State (pid file, log) lives under $LLMPROXY_SERVICES_DIR (default
# ${TMPDIR:-/tmp}/llmproxy-services/<name>). Everything but the exports
# that do_env prints goes to stderr, so `eval "$(x.sh start)"` works.

state_dir="${LLMPROXY_SERVICES_DIR:-${TMPDIR:-/tmp}/llmproxy-services}/$name"
pid_file="$state_dir/$name.pid"
log_file="$state_dir/$name.log"

log() { echo "$name: $*" >&2; }

running() {
	[[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# already_up returns 0 when our server is running (printing its env), 1
# when nothing answers, and exits when someone else holds the port.
already_up() {
	if running && answers; then
		log "already running (pid $(cat "$pid_file"), port $port)"
		do_env
		return 0
	fi
	if answers; then
		log "port $port already answers but is not ours; stop that server or set $port_var"
		exit 1
	fi
	return 1
}

# launch starts the command from the state dir and waits until it
# answers.
launch() {
	mkdir -p "$state_dir"
	log "starting on 127.0.0.1:$port (log $log_file)"
	(cd "$state_dir" && exec nohup "$@" >"$log_file" 2>&1 </dev/null) &
	echo $! >"$pid_file"
	for _ in $(seq 1 100); do
		if answers; then
			log "ready"
			do_env
			return
		fi
		if ! running; then
			log "exited during start; log follows"
			cat "$log_file" >&2
			exit 1
		fi
		sleep 0.2
	done
	log "did not answer within 20s; log follows"
	cat "$log_file" >&2
	exit 1
}

do_stop() {
	if running; then
		local pid
		pid="$(cat "$pid_file")"
		kill "$pid"
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		log "stopped (pid $pid)"
	else
		log "not running"
	fi
	rm -f "$pid_file"
}

service_main() {
	case "${1:-}" in
	install) do_install ;;
	start) already_up || do_start ;;
	stop) do_stop ;;
	env) do_env ;;
	*)
		echo "usage: $0 install|start|stop|env" >&2
		exit 2
		;;
	esac
}
