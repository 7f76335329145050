# otpprobe in a container: a static binary on a minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /otpprobe ./cmd/otpprobe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /otpprobe /usr/local/bin/otpprobe
WORKDIR /var/lib/otpprobe
ENTRYPOINT ["/usr/local/bin/otpprobe"]
CMD ["lab", "--listen", "0.0.0.0:8080", "--schedule", "@every 10s"]
