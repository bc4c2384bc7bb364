#!/usr/bin/env bash
# A one-node Kubernetes on loopback, for the Kubernetes tests. Everything comes from Debian packages: the binaries
# are built from Debian's source package `kubernetes` with Debian's golang-go, etcd is Debian's etcd-server, and pods
# run on the machine's dockerd through the kubelet's dockershim. Needs root on Debian (bookworm), a Docker daemon,
# and the packages golang-go etcd-server jq rsync gcc openssl curl (installed when missing).
#
#   tools/kube_cluster.sh build          build once per machine (cached, keyed by the source package's version);
#                                        prints the cache folder
#   tools/kube_cluster.sh runtime        write the runc wrapper dockerd needs here; prints its path (see below)
#   tools/kube_cluster.sh start DIR      start the cluster with its state in DIR; waits until the node is Ready;
#                                        prints the kubeconfig's path (DIR/kubeconfig)
#   tools/kube_cluster.sh stop DIR       stop what `start DIR` started, by PID, and remove DIR
#
# The cache is ${PYMEMRI_KUBE_CACHE:-/var/cache/pymemri-kube}/<version>/ (bin/ and the pause binary); the pause image
# is put in Docker as $pause_image. Ports (all 127.0.0.1): etcd 23790/23800, apiserver 16443, kubelet 10250.
#
# Why a runc wrapper: the dockershim gives every pod sandbox an OOM score adjustment of -998, and machines that
# forbid lowering a process's OOM score (containers, some VMs) make runc fail ("can't get final child's PID from
# pipe"). The wrapper raises a negative adjustment to 0 in the container's config.json, then runs runc. dockerd must
# run with `--add-runtime clamp=<wrapper> --default-runtime=clamp` (.ci/run does this when it starts dockerd).
set -euo pipefail

cache_root=${PYMEMRI_KUBE_CACHE:-/var/cache/pymemri-kube}
pause_image=pymemri/kube-pause:3.2
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
recipe=3  # raised when the build changes, so that caches of an older recipe are rebuilt
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
etcd_port=23790 etcd_peer_port=23800 api_port=16443 kubelet_port=10250

say() { echo "$*" >&2; }
die() { echo "Error: $*" >&2; exit 1; }

needs_root_on_debian() {
    # shellcheck disable=SC1091
    . /etc/os-release
    [ "${ID:-}" = debian ] || die "this builds from Debian packages, but this machine runs ${PRETTY_NAME:-an unknown system}"
    [ "$(id -u)" = 0 ] || die "this needs root (it installs packages, runs the kubelet and mounts volumes)"
}

install_missing() {
    local packages=() pair
    for pair in go:golang-go etcd:etcd-server jq:jq rsync:rsync gcc:gcc openssl:openssl curl:curl; do
        command -v "${pair%%:*}" >/dev/null || packages+=("${pair#*:}")
    done
    [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || packages+=(libc6-dev)
    [ -d "$reflect2" ] || packages+=(golang-github-modern-go-reflect2-dev)
    [ ${#packages[@]} -eq 0 ] && return 0
    say "Installing ${packages[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${packages[@]}" >&2
}

source_version() {  # the version of Debian's kubernetes source package, through a binary package it builds
    local version
    version=$(apt-cache policy kubernetes-client | awk '/Candidate:/ {print $2}')
    [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt knows no package kubernetes-client (is bookworm in the apt sources?)"
    echo "$version"
}

write_runtime() {  # the runc wrapper, under the cache root (not keyed by version)
    mkdir -p "$cache_root"
    local wrapper="$cache_root/runc-clamp"
    cat >"$wrapper.new" <<'EOF'
#!/bin/sh
# runc with a negative process.oomScoreAdj in the bundle's config.json raised to 0, for machines where a process may
# not lower its OOM score. Written by pymemri's tools/kube_cluster.sh.
bundle=""
expect_bundle=0
for arg in "$@"; do
    if [ "$expect_bundle" = 1 ]; then bundle=$arg; expect_bundle=0; continue; fi
    case $arg in
        --bundle|-b) expect_bundle=1 ;;
        --bundle=*) bundle=${arg#--bundle=} ;;
    esac
done
config="$bundle/config.json"
if [ -n "$bundle" ] && [ -f "$config" ] && command -v jq >/dev/null \
        && jq -e '(.process.oomScoreAdj // 0) < 0' "$config" >/dev/null 2>&1; then
    jq '.process.oomScoreAdj = 0' "$config" >"$config.clamped" && mv "$config.clamped" "$config"
fi
exec runc "$@"
EOF
    chmod 755 "$wrapper.new"
    mv "$wrapper.new" "$wrapper"
    echo "$wrapper"
}

fetch_source() {  # $1: version, $2: folder to unpack into. apt with a private configuration that adds deb-src lines
    local version=$1 into=$2 apt_dir="$cache_root/apt"
    rm -rf "$apt_dir" && mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/download"
    local found=0 file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -e "$file" ] || continue
        grep -q 'debian' "$file" || continue
        sed 's/^Types:.*/Types: deb-src/' "$file" >"$apt_dir/sources.list.d/$(basename "$file")"
        found=1
    done
    if [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$apt_dir/sources.list.d/from-sources-list.list"
        found=1
    fi
    [ "$found" = 1 ] || die "found no Debian apt sources to add deb-src lines to"
    local apt_options=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o "APT::Sandbox::User=root")
    apt-get "${apt_options[@]}" update -qq >&2
    (cd "$apt_dir/download" && apt-get "${apt_options[@]}" source --download-only -qq "kubernetes=$version" >&2)
    local tarball
    tarball=$(ls "$apt_dir"/download/kubernetes_*.orig.tar.* | head -n 1)
    mkdir -p "$into"
    tar -xf "$tarball" -C "$into" --strip-components=1
    rm -rf "$apt_dir"
}

build() {
    needs_root_on_debian
    install_missing
    local version dir
    version=$(source_version)
    dir="$cache_root/$version-$recipe"
    mkdir -p "$cache_root"
    exec 9>"$cache_root/build.lock"
    flock 9
    if [ ! -f "$dir/complete" ]; then
        local started=$SECONDS src="$dir/build"
        say "Building Kubernetes from Debian's source package kubernetes $version (about 10 minutes on 2 cores)"
        rm -rf "$dir" && mkdir -p "$dir/bin"
        fetch_source "$version" "$src"
        local upstream=${version#*really}; upstream=v${upstream%%-*}
        local major=${upstream#v}; major=${major%%.*}
        local minor=${upstream#v*.}; minor=${minor%%.*}
        # The tree vendors reflect2 1.0.1, whose map iteration crashes programs built with Go 1.18 or later (the
        # apiserver dies writing indented JSON): put Debian's reflect2 (1.0.2, which works with them) in its place.
        rm -f "$src"/vendor/github.com/modern-go/reflect2/*.go
        cp "$reflect2"/*.go "$src/vendor/github.com/modern-go/reflect2/"
        rm -f "$src"/vendor/github.com/modern-go/reflect2/*_test.go
        (
            cd "$src"
            export GOCACHE="$dir/gocache" GOFLAGS="" GO111MODULE=off CGO_ENABLED=0
            # The tarball lacks generated code (the apiserver's OpenAPI definitions among it).
            make generated_files >&2
            mkdir -p .gopath/src/k8s.io && ln -sfn ../../.. .gopath/src/k8s.io/kubernetes
            export GOPATH="$src/.gopath"
            cd .gopath/src/k8s.io/kubernetes
            local version_package ldflags="-s -w" binary
            # The version the binaries and the apiserver's /version report (else v0.0.0-master).
            for version_package in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
                    k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/pkg/version; do
                ldflags+=" -X $version_package.gitVersion=$upstream -X $version_package.gitMajor=$major"
                ldflags+=" -X $version_package.gitMinor=$minor -X $version_package.gitTreeState=clean"
            done
            for binary in "${binaries[@]}"; do
                say "  go build $binary ($((SECONDS - started)) s so far)"
                go build -ldflags "$ldflags" -o "$dir/bin/$binary" "./cmd/$binary" >&2
            done
            gcc -Os -static -o "$dir/bin/pause" build/pause/linux/pause.c
        )
        rm -rf "$src" "$dir/gocache"
        echo "$version" >"$dir/complete"
        # Binaries of other versions or recipes are of no further use.
        find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -path "$dir" -exec rm -rf {} +
        say "Built in $((SECONDS - started)) s"
    fi
    if ! docker image inspect "$pause_image" >/dev/null 2>&1; then
        tar -C "$dir/bin" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - "$pause_image" >/dev/null
        say "Put the pause image $pause_image in Docker"
    fi
    write_runtime >/dev/null
    echo "$dir"
}

wait_for() {  # $1: seconds, $2: what, rest: command that succeeds when ready
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what was not ready within $seconds s (logs in $state)"
}

api() {  # GET a path on the apiserver as admin
    curl -sfk -A pymemri-kube-cluster -H "Authorization: Bearer $(cut -d, -f1 "$state/tokens.csv")" "https://127.0.0.1:$api_port$1"
}

node_ready() {
    api /api/v1/nodes/localhost | jq -e '.status.conditions[] | select(.type == "Ready") | .status == "True"' | grep -q true
}

run_in_background() {  # $1: name; rest: command. Records the PID in $state/pids
    local name=$1
    shift
    setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
    echo "$name $!" >>"$state/pids"
}

start() {
    needs_root_on_debian
    state=${1:?start needs a state folder}
    local dir started=$SECONDS
    dir=$(build)
    local bin="$dir/bin"
    docker info >/dev/null 2>&1 || die "no Docker daemon answers"
    docker info --format '{{json .Runtimes}}' | grep -q clamp \
        || say "Warning: dockerd has no runtime named clamp; pod sandboxes may fail to start (see $0)"
    [ -e "$state/pids" ] && die "$state holds a running cluster; stop it first ($0 stop $state)"
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    for port in $etcd_port $api_port $kubelet_port; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port on 127.0.0.1 is in use"; fi
    done
    : >"$state/pids"
    local token
    token=$(openssl rand -hex 24)
    (umask 077 && echo "$token,admin,admin,system:masters" >"$state/tokens.csv")
    openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
    openssl rsa -in "$state/sa.key" -pubout -out "$state/sa.pub" 2>/dev/null
    (umask 077 && cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $state/pki/apiserver.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context:
    cluster: local
    user: admin
    namespace: default
current-context: local
EOF
    )
    local gates=--feature-gates=TTLAfterFinished=true
    run_in_background etcd etcd --name local --data-dir "$state/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster "local=http://127.0.0.1:$etcd_peer_port"
    wait_for 30 etcd curl -sf "http://127.0.0.1:$etcd_port/health"
    run_in_background kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --secure-port=$api_port --insecure-port=0 --cert-dir="$state/pki" \
        --token-auth-file="$state/tokens.csv" --authorization-mode=Node,RBAC \
        --service-account-key-file="$state/sa.pub" --service-account-signing-key-file="$state/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
        --advertise-address=127.0.0.1 --allow-privileged=true --kubelet-preferred-address-types=Hostname "$gates"
    wait_for 60 kube-apiserver api /readyz
    local api_ready=$((SECONDS - started))
    run_in_background kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$state/kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=0 --port=0 --service-account-private-key-file="$state/sa.key" \
        --root-ca-file="$state/pki/apiserver.crt" --use-service-account-credentials=false --leader-elect=false "$gates"
    run_in_background kube-scheduler "$bin/kube-scheduler" --kubeconfig="$state/kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=0 --port=0 --leader-elect=false
    run_in_background kubelet "$bin/kubelet" --kubeconfig="$state/kubeconfig" --container-runtime=docker \
        --pod-infra-container-image="$pause_image" --fail-swap-on=false --cgroup-driver=cgroupfs \
        --root-dir="$state/kubelet" --cert-dir="$state/kubelet-pki" \
        --experimental-dockershim-root-directory="$state/dockershim" --hostname-override=localhost \
        --address=127.0.0.1 --port=$kubelet_port --read-only-port=0 --healthz-port=0 --cgroups-per-qos=false \
        --enforce-node-allocatable="" --eviction-hard="" --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
        --serialize-image-pulls=false
    wait_for 120 "the node" node_ready
    # Pods are refused until their namespace's service account exists (the controller-manager makes it).
    wait_for 60 "the default service account" api /api/v1/namespaces/default/serviceaccounts/default
    say "Kubernetes is up in $((SECONDS - started)) s (apiserver ready after $api_ready s); state in $state"
    echo "$state/kubeconfig"
}

stop_pid() {  # $1: name, $2: pid. SIGTERM, then SIGKILL after 10 s; only if the PID still runs that program
    local name=$1 pid=$2 exe i
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
    exe=${exe% (deleted)}  # a binary replaced since by a rebuild
    [ "$(basename "$exe")" = "$name" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 20; i++)); do [ -e "/proc/$pid" ] || return 0; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop() {
    state=${1:?stop needs a state folder}
    [ -d "$state" ] || return 0
    state=$(cd "$state" && pwd)
    if [ -f "$state/pids" ]; then
        local line
        # Last started first: the kubelet, then the scheduler and the controller-manager, the apiserver, etcd.
        tac "$state/pids" | while read -r line; do stop_pid ${line% *} ${line#* }; done
    fi
    # Containers the kubelet started outlive it.
    local containers
    containers=$(docker ps -aq --filter 'label=io.kubernetes.docker.type' 2>/dev/null || true)
    [ -n "$containers" ] && docker rm -f $containers >/dev/null 2>&1 || true
    # The kubelet mounts its root folder onto itself and secret volumes below it: unmount, deepest first.
    findmnt -rn -o TARGET | awk -v root="$state/" 'index($0, root) == 1' | sort -r | while read -r mount; do
        umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
    done
    if findmnt -rn -o TARGET | grep -q "^$state/"; then die "could not unmount everything under $state"; fi
    rm -rf "$state"
}

case "${1:-}" in
    build) build ;;
    runtime) write_runtime ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) die "usage: $0 build | runtime | start DIR | stop DIR" ;;
esac
