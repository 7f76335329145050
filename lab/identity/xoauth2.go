package identity

import "strings"

// ParseXOAUTH2 reads a client's XOAUTH2 initial response,
// "user=U\x01auth=Bearer T\x01\x01": what the lab's SMTP and IMAP servers
// verify with Verify.
func ParseXOAUTH2(s string) (user, token string, ok bool) {
	for _, kv := range strings.Split(s, "\x01") {
		switch {
		case strings.HasPrefix(kv, "user="):
			user = kv[len("user="):]
		case strings.HasPrefix(strings.ToLower(kv), "auth=bearer "):
			token = kv[len("auth=bearer "):]
		}
	}
	return user, token, user != "" && token != ""
}
