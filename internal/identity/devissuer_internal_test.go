package identity

import (
	"net/http"
	"testing"
)

// TestDevIssuerDecideRemote checks the loopback rule on the decision function
// directly: tests must not send traffic from a non-loopback address, so the
// address is only a string here.
func TestDevIssuerDecideRemote(t *testing.T) {
	d, err := NewDevIssuer("http://127.0.0.1:8080/dev", nil, DevOptions{
		Clients: []DevClient{{ID: "bot", Secret: "pw", Groups: []string{"g"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	unknown := TokenRequest{GrantType: "client_credentials", ClientID: "someone", Subject: "root", Groups: "admins"}
	for _, addr := range []string{"192.0.2.10:5555", "[2001:db8::1]:443", "10.0.0.1:1", "garbage", ""} {
		_, oerr := d.decide(unknown, addr)
		if oerr == nil || oerr.Code != "invalid_client" || oerr.status != http.StatusUnauthorized {
			t.Errorf("unknown client from %q: %v, want invalid_client", addr, oerr)
		}
	}
	for _, addr := range []string{"127.0.0.1:5555", "127.8.9.10:1", "[::1]:80"} {
		g, oerr := d.decide(unknown, addr)
		if oerr != nil {
			t.Fatalf("unknown client from %q: %v", addr, oerr)
		}
		if g.subject != "root" || g.clientID != "someone" || len(g.groups) != 1 || g.groups[0] != "admins" {
			t.Fatalf("grant = %+v", g)
		}
	}
	// Configured clients work from anywhere with the right secret, and
	// never without it, loopback or not.
	good := TokenRequest{GrantType: "client_credentials", ClientID: "bot", ClientSecret: "pw", SecretGiven: true}
	if g, oerr := d.decide(good, "192.0.2.10:5555"); oerr != nil || g.subject != "bot" {
		t.Fatalf("configured client: %+v %v", g, oerr)
	}
	for _, addr := range []string{"192.0.2.10:5555", "127.0.0.1:1"} {
		bad := good
		bad.ClientSecret = "pW"
		if _, oerr := d.decide(bad, addr); oerr == nil || oerr.Code != "invalid_client" {
			t.Fatalf("wrong secret from %s: %v", addr, oerr)
		}
		bad.SecretGiven, bad.ClientSecret = false, ""
		if _, oerr := d.decide(bad, addr); oerr == nil || oerr.Code != "invalid_client" {
			t.Fatalf("no secret from %s: %v", addr, oerr)
		}
	}
}

func TestNewDevIssuerRejectsBadClients(t *testing.T) {
	for _, c := range [][]DevClient{
		{{ID: "a"}},
		{{Secret: "x"}},
		{{ID: "a", Secret: "x"}, {ID: "a", Secret: "y"}},
	} {
		if _, err := NewDevIssuer("http://127.0.0.1/dev", nil, DevOptions{Clients: c}); err == nil {
			t.Errorf("clients %+v accepted", c)
		}
	}
	if _, err := NewDevIssuer("/dev", nil, DevOptions{}); err == nil {
		t.Error("relative issuer URL accepted")
	}
}

// FuzzDevDecide checks the dev issuer's decision on arbitrary requests: it
// never panics, never grants an unconfigured client to a non-loopback
// address, and never grants a configured client without its secret.
func FuzzDevDecide(f *testing.F) {
	d, err := NewDevIssuer("http://127.0.0.1:8080/dev", nil, DevOptions{
		Clients: []DevClient{{ID: "bot", Secret: "pw"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("client_credentials", "bot", "pw", true, "", "", "1h", "192.0.2.1:1")
	f.Add("client_credentials", "x", "", false, "root", "a,b", "", "127.0.0.1:9")
	f.Add("client_credentials", "x", "", false, "", "", "9999h", "[::1]:9")
	f.Add("password", "bot", "pw", true, "", "", "", "10.1.2.3:4")
	f.Fuzz(func(t *testing.T, grantType, id, secret string, given bool, sub, groups, ttl, addr string) {
		req := TokenRequest{GrantType: grantType, ClientID: id, ClientSecret: secret, SecretGiven: given, Subject: sub, Groups: groups, TTL: ttl}
		g, oerr := d.decide(req, addr)
		if oerr != nil {
			if oerr.Code == "" || oerr.status == 0 {
				t.Fatalf("error without code/status: %+v", oerr)
			}
			return
		}
		if g.ttl <= 0 || g.ttl > d.opts.MaxTTL {
			t.Fatalf("ttl %v out of range", g.ttl)
		}
		if id == "bot" && (!given || secret != "pw") {
			t.Fatal("configured client granted without its secret")
		}
		if id != "bot" && !isLoopback(addr) {
			t.Fatalf("unconfigured client granted to %q", addr)
		}
		if g.subject == "" || g.clientID == "" {
			t.Fatalf("empty subject or client id: %+v", g)
		}
	})
}
