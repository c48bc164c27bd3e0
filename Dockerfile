# syntax=docker/dockerfile:1
#
# The gateway image. Three stages so the runtime image holds only compiled JavaScript and
# production dependencies, run by an unprivileged user:
#   build      full install + `turbo run build` of the gateway and the packages it imports
#   prod-deps  `npm ci --omit=dev` from the package manifests alone (cached until they change)
#   runtime    node + prod node_modules + packages/*/dist, as uid 1000
#
# Base image: uWebSockets.js ships prebuilt binaries linked against glibc >= 2.27 for the Node ABI
# of each release line (115 = Node 20). Debian bookworm has glibc 2.36; Alpine (musl) cannot
# load them. Keep the three stages on the same NODE_IMAGE so the ABI matches.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc turbo.json tsconfig.base.json tsconfig.json ./
COPY packages ./packages
# Then keep each workspace's manifest (npm needs them all to link the workspaces) and its dist.
RUN npm ci --no-audit --no-fund \
 && npx turbo run build --filter=@wsgw/gateway... \
 && mkdir -p /out/manifests /out/app \
 && cp package.json package-lock.json .npmrc /out/manifests/ \
 && for dir in packages/*/; do \
      mkdir -p "/out/manifests/$dir" "/out/app/$dir" \
      && cp "$dir/package.json" "/out/manifests/$dir" \
      && cp "$dir/package.json" "/out/app/$dir" \
      && if [ -d "$dir/dist" ]; then cp -r "$dir/dist" "/out/app/$dir"; fi; \
    done

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY --from=build /out/manifests/ ./
# --ignore-scripts: no dependency needs an install script at run time (uWS ships its binaries).
# Tooling packages (deploy checks, local cluster) keep their dependencies in devDependencies.
# uWS ships binaries for every platform; keep Linux ones (x64 and arm64 images share this file).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules/uWebSockets.js -name '*.node' ! -name 'uws_linux_*' -delete \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ws-gateway" \
      org.opencontainers.image.description="Horizontally scalable WebSocket gateway on uWebSockets.js"
# Production unless told otherwise: a misconfigured pod refuses to start (CONTRACT §1) instead of
# quietly running with the dev session validator. docker compose sets development explicitly.
# NODE_OPTIONS: the V8 options the gateway ships with (packages/gateway/src/runtime.ts, where the
# reason is; a test keeps the two equal). Setting NODE_OPTIONS on the pod replaces them.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /out/app/ ./
# The `node` user of the official image, by number so Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 8000
STOPSIGNAL SIGTERM
# No curl in the slim image: node's own fetch probes the liveness endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/healthz').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
CMD ["node", "packages/gateway/dist/main.js"]
