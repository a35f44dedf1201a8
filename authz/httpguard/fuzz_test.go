package httpguard_test

import (
	"net/netip"
	"testing"

	"github.com/taskguard/taskguard/authz/httpguard"
)

// FuzzPrivateAddrForms checks that every IPv6 form embedding an IPv4
// address is classified as the address itself would be (IPv4-mapped,
// NAT64 64:ff9b::/96), and that an embedded private address is private in
// every form (also IPv4-compatible ::a.b.c.d).
func FuzzPrivateAddrForms(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0", "8.8.8.8", "1.1.1.1", "224.0.0.1", "192.168.0.1"} {
		a := netip.MustParseAddr(s).As4()
		f.Add(a[0], a[1], a[2], a[3])
	}
	f.Fuzz(func(t *testing.T, a, b, c, d byte) {
		v4 := netip.AddrFrom4([4]byte{a, b, c, d})
		private := httpguard.PrivateAddr(v4)
		mapped := netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: a, 13: b, 14: c, 15: d})
		nat64 := netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b, 12: a, 13: b, 14: c, 15: d})
		compat := netip.AddrFrom16([16]byte{12: a, 13: b, 14: c, 15: d})
		if got := httpguard.PrivateAddr(mapped); got != private {
			t.Errorf("PrivateAddr(%v) = %v, PrivateAddr(%v) = %v", mapped, got, v4, private)
		}
		if got := httpguard.PrivateAddr(nat64); got != private {
			t.Errorf("PrivateAddr(%v) = %v, PrivateAddr(%v) = %v", nat64, got, v4, private)
		}
		if private && !httpguard.PrivateAddr(compat) {
			t.Errorf("PrivateAddr(%v) = false for the private %v", compat, v4)
		}
		u := v4
		if u.IsLoopback() || u.IsPrivate() || u.IsUnspecified() || u.IsMulticast() || u.IsLinkLocalUnicast() {
			if !private {
				t.Errorf("PrivateAddr(%v) = false", v4)
			}
		}
	})
}
