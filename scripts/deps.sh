#!/usr/bin/env bash
# Installs everything the project needs on a Debian 12 machine, as root,
# and builds into prefixes inside the build tree, from Debian's source
# packages with our patches:
#   - libmicrohttpd 0.9.75, static only, with
#     deps/patches/libmicrohttpd-0.9.75.patch (strict framing, JSON error
#     answers, MHD_OPTION_NOTIFY_ERROR_RESPONSE), into deps/mhd;
#   - czmq 4.2.1 with its DRAFT API (zhttp_server) and
#     deps/patches/czmq-4.2.1-zhttp.patch, linking that libmicrohttpd into
#     libczmq.so, so that no system libmicrohttpd is used at run time,
#     into deps/czmq;
#   - the tests' tools from npm, deps/npm/package-lock.json (validate-api,
#     which checks http_front/openapi.json as OpenAPI 3.1), into deps/npm.
# Safe to run again: each step is skipped when its result is already there.
#
#   scripts/deps.sh [BUILD_DIR]      (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$top/build}")   # apt needs absolute paths
deps=$build/deps
src=$deps/src
prefix=$deps/czmq
patch=$top/deps/patches/czmq-4.2.1-zhttp.patch
stamp=$prefix/.stamp
mhd_version=0.9.75
mhd_deb=$mhd_version-6                    # the Debian package's version
mhd_prefix=$deps/mhd
mhd_patch=$top/deps/patches/libmicrohttpd-$mhd_version.patch
mhd_stamp=$mhd_prefix/.stamp

log() { printf '[deps] %s\n' "$*"; }

# Runs "$@" with its output in log file $1, or fails with the log's tail.
logged() {
    local file=$1
    shift
    "$@" >"$file" 2>&1 || { tail -n 30 "$file" >&2; exit 1; }
}

# 1. Debian packages. One apt-get update only when something is missing.
#    No libmicrohttpd-dev: ours is built below.
pkgs=(build-essential cmake pkg-config git ca-certificates
      libzmq3-dev libsodium-dev libmsgpack-dev libssl-dev libcmocka-dev
      libjansson-dev libcurl4-openssl-dev zlib1g-dev
      clang libclang-rt-14-dev python3 curl
      docker-compose python3-yaml iproute2    # tests/test_compose.py, test_netns.py
      python3-jsonschema                      # tests/cart_openapi.py (draft 2020-12)
      prometheus)                             # promtool, for tests/test_metrics.py
# Node.js and npm for deps/npm: the machine's own when it has them (a
# Node.js from elsewhere brings its npm), else Debian's
command -v npm >/dev/null || pkgs+=(nodejs npm)
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

# 1b. The tests' npm packages, exactly as locked, once per lock file
npm_dir=$deps/npm
npm_want=$(sha1sum < "$top/deps/npm/package-lock.json" | cut -c1-40)
if [ -f "$npm_dir/.stamp" ] && [ "$(cat "$npm_dir/.stamp")" = "$npm_want" ]; then
    log "the tests' npm packages already in $npm_dir"
else
    log "installing the tests' npm packages into $npm_dir"
    rm -rf "$npm_dir"
    mkdir -p "$npm_dir"
    cp "$top/deps/npm/package.json" "$top/deps/npm/package-lock.json" "$npm_dir/"
    logged "$deps/npm.log" npm ci --prefix "$npm_dir" --ignore-scripts --no-audit --no-fund
    echo "$npm_want" > "$npm_dir/.stamp"
fi

# Downloads a Debian source package (apt-get source's PKG=VERSION) into
# $src, unless its files are there. A private apt configuration with
# deb-src entries derived from the machine's own Debian sources, made and
# updated once per run: no system file is changed.
aptopts=()
fetch_source() {
    local name=${1%%=*} version=${1#*=}
    [ -f "$src/${name}_$version.dsc" ] && return 0
    if ((${#aptopts[@]} == 0)); then
        local apt_dir=$deps/apt f
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
        : > "$apt_dir/sources.list"
        : > "$apt_dir/debian.sources"
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
        rm -f "$apt_dir/parts/debian.sources"
        [ -s "$apt_dir/debian.sources" ] && mv "$apt_dir/debian.sources" "$apt_dir/parts/"
        aptopts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
                 -o "Dir::Etc::SourceParts=$apt_dir/parts"
                 -o "Dir::State::Lists=$apt_dir/lists"
                 -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
        apt-get "${aptopts[@]}" update -qq
    fi
    log "fetching $name's Debian source package"
    (cd "$src" && apt-get "${aptopts[@]}" source --download-only -qq "$name=$version")
}
mkdir -p "$src"

# 2. libmicrohttpd, static and position-independent (it goes into
#    libczmq.so), without TLS, libcurl tests, examples or documentation,
#    built once per patch and build recipe. Its debug asserts stay off,
#    as in Debian's package.
mhd_flags=(--disable-shared --enable-static --with-pic
    --disable-https --without-gnutls --disable-curl --disable-examples
    --disable-doc --disable-nls --disable-dependency-tracking CFLAGS="-O2 -g")
mhd_want=$( (cat "$mhd_patch"; echo "$mhd_deb ${mhd_flags[*]}") | sha1sum | cut -c1-40)
if [ -f "$mhd_stamp" ] && [ "$(cat "$mhd_stamp")" = "$mhd_want" ]; then
    log "libmicrohttpd already in $mhd_prefix"
else
    fetch_source "libmicrohttpd=$mhd_deb"
    mhd_src=$src/libmicrohttpd-$mhd_version
    rm -rf "$mhd_src" "$src/mhd-build" "$mhd_prefix"
    # dpkg-source applies Debian's own patches (debian/patches) first
    logged "$src/mhd-unpack.log" \
        dpkg-source -x "$src/libmicrohttpd_$mhd_deb.dsc" "$mhd_src"
    log "patching libmicrohttpd: $(basename "$mhd_patch")"
    patch -d "$mhd_src" -p1 --quiet < "$mhd_patch"
    log "building libmicrohttpd into $mhd_prefix"
    mkdir -p "$src/mhd-build"
    logged "$src/mhd-configure.log" env -C "$src/mhd-build" \
        "$mhd_src/configure" --prefix="$mhd_prefix" "${mhd_flags[@]}"
    logged "$src/mhd-build.log" make -C "$src/mhd-build" -j"$(nproc)"
    logged "$src/mhd-install.log" make -C "$src/mhd-build" install
    echo "$mhd_want" > "$mhd_stamp"
    log "libmicrohttpd ready"
fi

# 3. czmq with drafts, built once per patch, build recipe and
#    libmicrohttpd build (whose stamp is part of its own). Its asserts stay
#    on (no -DNDEBUG), as ours do. Set, the LIBMICROHTTPD_ variables of
#    czmq's Findlibmicrohttpd.cmake name our copy; pkg-config finds ours
#    too, for the libczmq.pc it writes.
czmq_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g"
    -DENABLE_DRAFTS=ON -DCZMQ_BUILD_STATIC=OFF
    -DCZMQ_WITH_LIBCURL=OFF -DCZMQ_WITH_LZ4=OFF -DCZMQ_WITH_UUID=OFF
    -DCZMQ_WITH_SYSTEMD=OFF -DCZMQ_WITH_NSS=OFF -DCZMQ_WITH_LIBMICROHTTPD=ON
    -DLIBMICROHTTPD_INCLUDE_DIRS="$mhd_prefix/include"
    -DLIBMICROHTTPD_LIBRARIES="$mhd_prefix/lib/libmicrohttpd.a")
want=$( (cat "$patch"; echo "${czmq_flags[*]}"; cat "$mhd_stamp") | sha1sum | cut -c1-40)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "czmq with drafts already in $prefix"
    exit 0
fi

fetch_source czmq=4.2.1-1
tarball=$(ls "$src"/czmq_4.2.1.orig.tar.* | head -n1)
rm -rf "$src/czmq-4.2.1" "$prefix"
tar -xf "$tarball" -C "$src"
log "patching czmq: $(basename "$patch")"
patch -d "$src/czmq-4.2.1" -p1 --quiet < "$patch"

log "building czmq with drafts into $prefix"
rm -rf "$src/czmq-build"
export PKG_CONFIG_PATH=$mhd_prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
logged "$src/cmake.log" cmake -S "$src/czmq-4.2.1" -B "$src/czmq-build" \
    -DCMAKE_INSTALL_PREFIX="$prefix" "${czmq_flags[@]}"
logged "$src/build.log" cmake --build "$src/czmq-build" -j"$(nproc)"
cmake --install "$src/czmq-build" >/dev/null
if readelf -d "$prefix/lib/libczmq.so" | grep -q 'NEEDED.*microhttpd'; then
    echo "deps: libczmq.so needs a shared libmicrohttpd, not ours" >&2
    exit 1
fi
echo "$want" > "$stamp"
log "czmq ready"
