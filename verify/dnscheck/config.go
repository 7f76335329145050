package dnscheck

import (
	"net"
	"slices"
	"strings"
)

// AddSelector adds a DKIM selector; active marks one seen signing our
// mail (s= of a canary's signature), which upgrades an existing entry.
func (d *Domain) AddSelector(name string, active bool) {
	for i := range d.Selectors {
		if strings.EqualFold(d.Selectors[i].Name, name) {
			d.Selectors[i].Active = d.Selectors[i].Active || active
			return
		}
	}
	d.Selectors = append(d.Selectors, Selector{Name: name, Active: active})
}

// AddSourceIP records an address that delivered our mail (from the
// receiver's headers), once.
func (d *Domain) AddSourceIP(ip net.IP) {
	if ip == nil || slices.ContainsFunc(d.SourceIPs, ip.Equal) {
		return
	}
	d.SourceIPs = append(d.SourceIPs, ip)
}
