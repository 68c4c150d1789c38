# One image for every role: docker run chatd serve --role=chat ...
# Build: docker build --build-arg VERSION=$(git describe --always --dirty) -t chatd .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# modernc.org/sqlite is pure Go, so the binary is static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/chatd/chatd/app.Version=${VERSION}" -o /out/chatd . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatd /usr/local/bin/chatd
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
# http.addr keeps its default, :8080, or :443 once TLS is on (--tls-domain).
ENV CHATD_DATA_DIR=/data CHATD_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
# The ops listener (http.ops_addr, 127.0.0.1:9090) answers /readyz over plain
# HTTP whether or not the public listener serves TLS.
HEALTHCHECK --interval=10s --timeout=3s CMD ["/usr/local/bin/chatd", "probe", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/usr/local/bin/chatd"]
CMD ["serve", "--role=all"]
