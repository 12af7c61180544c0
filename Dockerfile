# Build: docker build -t apiservice-guard:latest .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/apiservice-guard ./cmd/apiservice-guard

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/apiservice-guard /apiservice-guard
USER 65532:65532
ENTRYPOINT ["/apiservice-guard"]
