package attempts

import (
	"encoding/json"

	"github.com/otpprobe/otpprobe/attempt"
)

// BounceMessage is the DSN the engine kept in a bounced attempt's detail
// (probe's bounceDetail.Message), or "".
func BounceMessage(a *attempt.Attempt) string {
	var d struct {
		Bounce struct {
			Message string `json:"message"`
		} `json:"bounce"`
	}
	if a.Detail == "" || json.Unmarshal([]byte(a.Detail), &d) != nil {
		return ""
	}
	return d.Bounce.Message
}
