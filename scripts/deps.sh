#!/usr/bin/env bash
# Installs everything the project needs on a Debian 12 machine, as root,
# and builds czmq 4.2.1 with its DRAFT API (zhttp_server) and our patch
# into a prefix inside the build tree. Safe to run again: each step is
# skipped when its result is already there.
#
#   scripts/deps.sh [BUILD_DIR]      (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$top/build}")   # apt needs absolute paths
deps=$build/deps
prefix=$deps/czmq
patch=$top/deps/patches/czmq-4.2.1-zhttp.patch
stamp=$prefix/.stamp

log() { printf '[deps] %s\n' "$*"; }

# 1. Debian packages. One apt-get update only when something is missing.
pkgs=(build-essential cmake pkg-config git ca-certificates
      libzmq3-dev libsodium-dev libmsgpack-dev libssl-dev libcmocka-dev
      libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev zlib1g-dev
      clang libclang-rt-14-dev python3 curl
      docker-compose python3-yaml iproute2)   # tests/test_compose.py, test_netns.py
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages ${missing[*]}; run as root" >&2
        exit 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. czmq with drafts, built once per patch and build recipe. Its asserts
#    stay on (no -DNDEBUG), as ours do.
czmq_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g"
    -DENABLE_DRAFTS=ON -DCZMQ_BUILD_STATIC=OFF
    -DCZMQ_WITH_LIBCURL=OFF -DCZMQ_WITH_LZ4=OFF -DCZMQ_WITH_UUID=OFF
    -DCZMQ_WITH_SYSTEMD=OFF -DCZMQ_WITH_NSS=OFF -DCZMQ_WITH_LIBMICROHTTPD=ON)
want=$( (cat "$patch"; echo "${czmq_flags[*]}") | sha1sum | cut -c1-40)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "czmq with drafts already in $prefix"
    exit 0
fi

src=$deps/src
mkdir -p "$src"
tarball=$(ls "$src"/czmq_4.2.1.orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
    # A private apt configuration with deb-src entries derived from the
    # machine's own Debian sources: no system file is changed.
    apt_dir=$deps/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    : > "$apt_dir/sources.list"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # keep the stanzas signed by Debian's archive key, as deb-src
        awk -v RS= -v ORS='\n\n' '/debian-archive-keyring/' "$f" \
            | sed 's/^Types:.*/Types: deb-src/' >> "$apt_dir/debian.sources"
    done
    if [ -f /etc/apt/sources.list ]; then
        sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' /etc/apt/sources.list \
            >> "$apt_dir/sources.list"
    fi
    mkdir -p "$apt_dir/parts"
    [ -s "$apt_dir/debian.sources" ] && mv "$apt_dir/debian.sources" "$apt_dir/parts/"
    aptopts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
             -o "Dir::Etc::SourceParts=$apt_dir/parts"
             -o "Dir::State::Lists=$apt_dir/lists"
             -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
    log "fetching czmq's Debian source package"
    apt-get "${aptopts[@]}" update -qq
    (cd "$src" && apt-get "${aptopts[@]}" source --download-only -qq czmq=4.2.1-1)
    tarball=$(ls "$src"/czmq_4.2.1.orig.tar.* | head -n1)
fi

rm -rf "$src/czmq-4.2.1" "$prefix"
tar -xf "$tarball" -C "$src"
log "patching czmq: $(basename "$patch")"
patch -d "$src/czmq-4.2.1" -p1 --quiet < "$patch"

log "building czmq with drafts into $prefix"
rm -rf "$src/czmq-build"
cmake -S "$src/czmq-4.2.1" -B "$src/czmq-build" -DCMAKE_INSTALL_PREFIX="$prefix" \
    "${czmq_flags[@]}" >"$src/cmake.log" 2>&1 \
    || { tail -n 30 "$src/cmake.log" >&2; exit 1; }
cmake --build "$src/czmq-build" -j"$(nproc)" >"$src/build.log" 2>&1 \
    || { tail -n 30 "$src/build.log" >&2; exit 1; }
cmake --install "$src/czmq-build" >/dev/null
echo "$want" > "$stamp"
log "czmq ready"
