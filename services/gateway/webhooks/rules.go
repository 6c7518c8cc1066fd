// Package webhooks holds signed webhook subscriptions: their rules (where
// a delivery may go, which events it wants), their secrets (encrypted at
// rest), their store, and the dispatcher that delivers the events of the
// MLPANEL_EVENTS stream to them through one durable JetStream consumer
// each.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Guard decides which addresses a delivery may reach. Link-local and
// cloud metadata addresses are never allowed (they hand out credentials);
// loopback, private and other internal ranges only inside Allow
// (MLPANEL_WEBHOOK_ALLOW); the panel's own address never.
type Guard struct {
	Allow []netip.Prefix
	// Self is the gateway's own listen address and public URL host, with
	// their ports: a webhook must not call the panel back.
	Self []HostPort
	// Resolve looks host names up (net.DefaultResolver when nil).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// HostPort is one address the panel answers at.
type HostPort struct {
	Host string // a name or an IP; an unspecified IP (0.0.0.0) means every local address
	Port string
}

var (
	metadataNames = []string{"metadata.google.internal", "metadata.google.internal.", "metadata", "instance-data", "instance-data.ec2.internal"}
	neverPrefixes = []netip.Prefix{
		netip.MustParsePrefix("169.254.0.0/16"), // link-local, AWS/GCP/Azure metadata
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("fd00:ec2::254/128"), // AWS metadata over IPv6
	}
	internalPrefixes = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("::/128"),
	}
)

// ParseAllow reads MLPANEL_WEBHOOK_ALLOW: CIDRs (or single IPs) separated
// by commas or spaces.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("MLPANEL_WEBHOOK_ALLOW: %q is not a CIDR such as 10.0.0.0/8 or 127.0.0.1/32", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckURL validates a webhook URL when it is created: an absolute http
// or https URL without credentials whose host resolves only to allowed
// addresses. The error says which rule it broke.
func (g Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("url %q: want an absolute http:// or https:// URL, e.g. https://hooks.example.com/mlpanel", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %q: credentials in the URL are refused; the signature (webhook-signature) authenticates deliveries", raw)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("url %q: a fragment (#...) is never sent; leave it out", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("url %q: port %q is not a port number", raw, port)
	}
	lower := strings.ToLower(host)
	if slices.Contains(metadataNames, lower) {
		return nil, fmt.Errorf("url %q: cloud metadata addresses are never allowed", raw)
	}
	for _, s := range g.Self {
		if strings.EqualFold(s.Host, host) && s.Port == port {
			return nil, fmt.Errorf("url %q: that is this panel's own address; a webhook must point at another service", raw)
		}
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("url %q: host %s does not resolve (%v): give a host name that resolves, or an IP", raw, host, err)
	}
	for _, a := range addrs {
		if err := g.CheckAddr(a, port); err != nil {
			return nil, fmt.Errorf("url %q: %w", raw, err)
		}
	}
	return u, nil
}

func (g Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if g.Resolve != nil {
		return g.Resolve(ctx, host)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, err
}

// CheckAddr applies the address rules to one IP and port; deliveries
// check the address they really dial, so a name that resolves elsewhere
// later (DNS rebinding) gains nothing.
func (g Guard) CheckAddr(a netip.Addr, port string) error {
	a = a.Unmap()
	for _, p := range neverPrefixes {
		if p.Contains(a) {
			return fmt.Errorf("address %s is link-local or cloud metadata (%s), which is never allowed", a, p)
		}
	}
	for _, s := range g.Self {
		if s.Port != port {
			continue
		}
		if sa, err := netip.ParseAddr(s.Host); err == nil {
			sa = sa.Unmap()
			if sa == a || (sa.IsUnspecified() && (a.IsLoopback() || a.IsUnspecified())) {
				return fmt.Errorf("address %s:%s is this panel's own address; a webhook must point at another service", a, port)
			}
		}
	}
	internal := a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast()
	for _, p := range internalPrefixes {
		internal = internal || p.Contains(a)
	}
	if !internal {
		return nil
	}
	for _, p := range g.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("address %s is loopback or private; allow its range in MLPANEL_WEBHOOK_ALLOW (e.g. %s) to deliver there", a, netip.PrefixFrom(a, a.BitLen()))
}

// Control is a net.Dialer Control that refuses a forbidden address at
// connect time.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", address, err)
	}
	if err := g.CheckAddr(ap.Addr(), strconv.Itoa(int(ap.Port()))); err != nil {
		return errors.New("refused: " + err.Error())
	}
	return nil
}
