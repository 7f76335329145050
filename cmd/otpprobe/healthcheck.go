package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// cmdHealthcheck asks a running otpprobe whether it is healthy, for
// container health checks (the image has no shell or curl): exit 0 on a
// 2xx answer, 1 otherwise.
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", stderr)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "what to GET (e.g. .../readyz)")
	tokenFile := fs.String("token-file", "", "a read token, for http.metrics_auth: read")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe healthcheck: --url: %v\n", err)
		return exitUsage
	}
	if *tokenFile != "" {
		tok, err := targets.ReadTokenFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "otpprobe healthcheck: --token-file: %v\n", err)
			return exitUsage
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe healthcheck: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	fmt.Fprintf(stdout, "%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode/100 != 2 {
		return exitFailed
	}
	return exitOK
}
