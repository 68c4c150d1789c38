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
ENV CHATD_DATA_DIR=/data CHATD_HTTP_ADDR=:8080 CHATD_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s CMD ["/usr/local/bin/chatd", "probe", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/chatd"]
CMD ["serve", "--role=all"]
