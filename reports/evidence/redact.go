package evidence

import (
	"encoding/base64"
	"reflect"
	"slices"
	"strings"

	"github.com/otpprobe/otpprobe/targets"
)

// Redactor removes the config's secrets from text. Transcripts are stored
// with AUTH already redacted and logs never carry secrets; this is the
// last net for everything a bundle writes (a password a server echoed in
// a reply, a token in a webhook URL).
type Redactor struct{ secrets []string }

// minSecret is the shortest value treated as a secret: shorter ones would
// blank out ordinary words.
const minSecret = 4

// NewRedactor collects every targets.Secret in cfg (walking the whole
// config, so secrets added to it later are covered), with their base64
// forms (AUTH PLAIN/LOGIN would carry those).
func NewRedactor(cfg *targets.Config) *Redactor {
	r := &Redactor{}
	if cfg != nil {
		walk(reflect.ValueOf(cfg), r, 0)
	}
	// Longest first, so a secret containing another is cut whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	r.secrets = slices.Compact(r.secrets)
	return r
}

var secretType = reflect.TypeFor[targets.Secret]()

func walk(v reflect.Value, r *Redactor, depth int) {
	if depth > 12 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), r, depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			walk(v.Field(i), r, depth+1)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), r, depth+1)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walk(it.Value(), r, depth+1)
		}
	case reflect.String:
		if v.Type() == secretType {
			r.add(v.String())
		}
	}
}

func (r *Redactor) add(s string) {
	s = strings.TrimSpace(s)
	if len(s) < minSecret {
		return
	}
	r.secrets = append(r.secrets, s, base64.StdEncoding.EncodeToString([]byte(s)))
}

// String returns s with every secret replaced by [redacted].
func (r *Redactor) String(s string) string {
	for _, x := range r.secrets {
		if strings.Contains(s, x) {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}
