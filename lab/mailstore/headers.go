package mailstore

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ProbeIDHeader is the header the prober puts its attempt ID in.
const ProbeIDHeader = "X-Otpprobe-Id"

// headerIDs returns the Message-ID (without angle brackets) and the probe ID
// of msg; empty strings when absent or when the header does not parse.
func headerIDs(msg []byte) (messageID, probeID string) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return "", ""
	}
	messageID = strings.TrimSpace(h.Get("Message-Id"))
	messageID = strings.TrimSuffix(strings.TrimPrefix(messageID, "<"), ">")
	return messageID, strings.TrimSpace(h.Get(ProbeIDHeader))
}
