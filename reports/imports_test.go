package reports_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the reports side off the engine: no reports package
// depends on the prober or the mail protocol libraries, and the ones that
// only read results (metrics, SLOs, the store) not even on the config's
// schedule parser.
func TestImports(t *testing.T) {
	const mod = "github.com/otpprobe/otpprobe"
	engine := []string{mod + "/probe", "github.com/emersion/go-smtp", "github.com/emersion/go-imap"}
	for pkg, banned := range map[string][]string{
		"./...":     engine,
		"./metrics": append(engine, "github.com/robfig/cron"),
		"./slo":     append(engine, "github.com/robfig/cron"),
		"./store":   append(engine, "github.com/robfig/cron"),
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					t.Errorf("reports/%s depends on %s", strings.TrimPrefix(pkg, "./"), dep)
				}
			}
		}
	}
}
