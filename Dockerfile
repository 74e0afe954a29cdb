# The cart service's image: Debian 12 and the README's own set-up,
# scripts/deps.sh (Debian's packages, czmq with its DRAFT API) then
# scripts/build.sh (every program into /cart/build/bin, on PATH).
# docker-compose.yml runs it as a cluster; alone it runs cartd:
#
#   docker build -t cart . && docker run -p 8080:8080 -v cart-data:/data cart
FROM debian:12

WORKDIR /cart

# The packages and czmq first, in a layer of their own: rebuilt only when
# the set-up changes, not with every source file. What only the build
# needs (czmq's sources, the private apt lists) is dropped.
COPY scripts/deps.sh scripts/
COPY deps/ deps/
RUN bash scripts/deps.sh build \
    && rm -rf build/deps/src build/deps/apt /var/lib/apt/lists/*

# The programs. .dockerignore keeps the host's build/ out, so the czmq
# above stays, and scripts/deps.sh finds everything in place.
COPY . .
RUN bash scripts/build.sh

# The services run as a user of their own; a named volume mounted on
# /keys or /data takes these folders' owner when it is first used.
RUN useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin cart \
    && install -d -o cart -g cart -m 0750 /keys /data
USER cart
ENV PATH=/cart/build/bin:/cart/scripts:$PATH

EXPOSE 8080 5555 5556
CMD ["cartd", "--host", "0.0.0.0", "--data-dir", "/data"]
