# syntax=docker/dockerfile:1
# fslb images: one build, three targets, each running one of the packages' bins.
#   docker build --target monitor -t fslb-monitor .
#   docker build --target proxy -t fslb-proxy .
#   docker build --target cli -t fslb .
# Each reads its configuration from FSLB_CONFIG (/etc/fslb/fslb.yaml: mount it there) or --config.
ARG NODE_IMAGE=node:22.23.2-bookworm-slim

# --- build: every dependency, then `tsc -b` into packages/*/dist -------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Manifests first, so that the dependency layer is reused until the lockfile changes.
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/monitor/package.json packages/monitor/
COPY packages/proxy/package.json packages/proxy/
COPY packages/cli/package.json packages/cli/
COPY test/fs-sim/package.json test/fs-sim/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.base.json ./
COPY packages packages
COPY test/fs-sim test/fs-sim
RUN npm run build

# --- runtime: production dependencies of the four packages, the built code, no sources -------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    FSLB_CONFIG=/etc/fslb/fslb.yaml
WORKDIR /opt/fslb
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/monitor/package.json packages/monitor/
COPY packages/proxy/package.json packages/proxy/
COPY packages/cli/package.json packages/cli/
RUN npm ci --omit=dev --no-audit --no-fund \
      -w packages/shared -w packages/monitor -w packages/proxy -w packages/cli \
    && npm cache clean --force
COPY --from=build /src/packages/shared/dist packages/shared/dist
COPY --from=build /src/packages/shared/lua packages/shared/lua
COPY --from=build /src/packages/monitor/dist packages/monitor/dist
COPY --from=build /src/packages/monitor/bin packages/monitor/bin
COPY --from=build /src/packages/proxy/dist packages/proxy/dist
COPY --from=build /src/packages/proxy/bin packages/proxy/bin
COPY --from=build /src/packages/cli/dist packages/cli/dist
COPY --from=build /src/packages/cli/bin packages/cli/bin
# Everything above belongs to root and stays read-only for the process.
USER node

FROM runtime AS monitor
EXPOSE 9101
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.FSLB_MONITOR_HTTP_PORT || 9101) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "packages/monitor/bin/fslb-monitor.js"]

FROM runtime AS proxy
EXPOSE 9102
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.FSLB_PROXY_HTTP_PORT || 9102) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM lets calls in progress finish (proxy.shutdownTimeoutMs, 40 s by default): give the
# container longer than that to stop (`docker stop -t 60`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "packages/proxy/bin/fslb-proxy.js"]

FROM runtime AS cli
ENTRYPOINT ["node", "packages/cli/bin/fslb.js"]
