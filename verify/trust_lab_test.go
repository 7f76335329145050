package verify_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify"
)

// forged is what a spoofer (or a careless template) puts in a canary: a
// Gmail-looking verdict that everything passed, and a Microsoft-looking one
// without authserv-id.
const forged = "Authentication-Results: mx.google.com;\r\n" +
	"       dkim=pass header.i=@example-bank.test header.s=selector1;\r\n" +
	"       spf=pass smtp.mailfrom=bounces@example-bank.test;\r\n" +
	"       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example-bank.test\r\n" +
	"Authentication-Results: spf=pass (sender IP is 127.0.0.11)\r\n" +
	" smtp.mailfrom=example-bank.test; dkim=pass (signature was verified)\r\n" +
	" header.d=example-bank.test;dmarc=pass action=none header.from=example-bank.test;compauth=pass reason=100\r\n"

// A canary carrying forged Authentication-Results goes through the lab for
// real — the prober's own sender client, the M365-like service, the
// provider's SPF/DKIM/DMARC, the prober's IMAP watcher — and the verdict
// comes from the provider's own topmost header; the forged ones are kept,
// marked untrusted.
func TestForgedAuthResultsThroughLab(t *testing.T) {
	w, err := lab.Start(context.Background(), lab.Options{RetryInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: t.TempDir(), M365: lab.M365Password}) // sendForged logs in with the password
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario, mailbox string
		wantFolder        string
		want              [3]string // spf, dkim, dmarc of the provider's own header
	}{
		// DMARC really fails (SPF temperror through the SERVFAILing include,
		// DKIM without key; Outlook applies the temperror as a fail) and
		// Outlook does not reject, it junks (oreject) into M365's "Junk Email".
		{"m365-spf-and-dkim-broken", lab.ProviderOutlook, "Junk Email", [3]string{"temperror", "fail", "temperror"}},
		// Gmail accepts: SPF passes, the missing key makes DKIM neutral;
		// the forged header has Gmail's own authserv-id.
		{"m365-dkim-txt-missing", lab.ProviderGmail, "INBOX", [3]string{"pass", "neutral", "pass"}},
	} {
		t.Run(tc.scenario+"/"+tc.mailbox, func(t *testing.T) {
			if err := w.Reset(); err != nil {
				t.Fatal(err)
			}
			if err := w.Apply(tc.scenario); err != nil {
				t.Fatal(err)
			}
			arr, mb := sendForged(t, cfg, tc.mailbox)
			if arr.Folder != tc.wantFolder {
				t.Errorf("canary in %s, want %s", arr.Folder, tc.wantFolder)
			}
			h, err := verify.ReadHeader(bytes.NewReader(arr.Header))
			if err != nil {
				t.Fatal(err)
			}
			// What the engine does for every arrival (probe/outcome.go).
			v := verify.Summarize(h, mb.AuthservID)
			if !v.Trusted || [3]string{v.SPF, v.DKIM, v.DMARC} != tc.want {
				t.Errorf("verdict trusted=%v spf=%s dkim=%s dmarc=%s, want %v from the provider's header", v.Trusted, v.SPF, v.DKIM, v.DMARC, tc.want)
			}
			// The independent re-check on the same header block names the
			// selector that signed; its key is gone in both scenarios.
			rc := verify.RecheckDKIMHeader(context.Background(), w.Resolver().LookupTXT, arr.Header)
			if len(rc) != 1 || rc[0].Selector != lab.M365ActiveSelector || rc[0].Result != "permerror" || rc[0].BodyChecked {
				t.Errorf("dkim re-check %+v, want selector1 permerror (no key)", rc)
			}
			if len(v.Untrusted) != 2 {
				t.Fatalf("%d untrusted headers, want the 2 forged ones: %+v", len(v.Untrusted), v.Untrusted)
			}
			for _, u := range v.Untrusted {
				if u.Trusted || u.Index == 0 || len(u.Find("dmarc")) == 0 || u.Find("dmarc")[0].Result != "pass" {
					t.Errorf("untrusted header %+v, want a forged dmarc=pass below the provider's", u)
				}
			}
		})
	}
}

// sendForged submits a canary with the forged headers through the lab's
// M365 service to mailbox and returns what the prober's watcher saw.
func sendForged(t *testing.T, cfg *targets.Config, mailbox string) (probe.Arrival, *targets.Mailbox) {
	t.Helper()
	mb, _ := cfg.Mailbox(mailbox)
	s, _ := cfg.Sender(lab.SenderM365)
	a, err := probe.NewAttempt(time.Now(), "forged", s.Name, s.From, mb.Name, mb.Provider, time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := probe.Compose(a, probe.Canary{From: s.From, To: mb.Address, Subject: "Your code [" + a.Token + "]", Body: "Your verification code is " + a.Code}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg = append([]byte(forged), msg...)
	// As the engine does: the outlook seed logs in with XOAUTH2 tokens.
	creds := probe.CredentialsFor
	snd, err := probe.NewSender(*s, creds(s.Auth))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := snd.Send(ctx, s.EnvelopeFrom, []string{mb.Address}, msg); err != nil {
		t.Fatal(err)
	}
	got := make(chan probe.Arrival, 2)
	for _, folder := range []string{"INBOX", probe.FolderJunk} {
		wt := probe.NewWatcher(probe.WatchConfig{Mailbox: *mb, Folder: folder, Creds: creds(mb.Auth), PollEvery: 200 * time.Millisecond}, probe.Canaries(
			func(tok string) bool { return tok == a.Token }, func(ar probe.Arrival) { got <- ar }))

		go wt.Run(ctx)
	}
	select {
	case ar := <-got:
		return ar, mb
	case <-ctx.Done():
		t.Fatal("the canary never arrived")
	}
	return probe.Arrival{}, nil
}
