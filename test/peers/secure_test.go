package peers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, valid for an
// hour, and returns their paths: it is its own CA, for the peer to trust.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(priv)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// baresip calls over SIP/TLS with SRTP mandatory (SDES keys in the SDP,
// which TLS keeps secret): voicebot answers RTP/SAVP, and what baresip
// decrypts and records holds the greeting.
func TestBaresipOverTLSWithSRTP(t *testing.T) {
	need(t, "baresip")
	work := t.TempDir()
	cert, key := selfSigned(t, work)
	tlsPort := freeTCPPort(t)
	vb := startVoicebot(t, 33900, withYAML(fmt.Sprintf(`
sip:
  tls: {listen: "127.0.0.1:%d", cert_file: %q, key_file: %q}
media:
  srtp: required
`, tlsPort, cert, key)))
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run("sox", "-n", "-r", "8000", "-c", "1", "-b", "16", filepath.Join(work, "silence.wav"), "trim", "0", "12")
	phone := newBaresip(t, work, filepath.Join(work, "silence.wav"),
		"<sip:tester@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand",
		"module stdio.so", "module srtp.so", "sip_cafile "+cert)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "baresip", "-f", phone.dir, "-e", fmt.Sprintf("/dial sip:bot@127.0.0.1:%d;transport=tls", tlsPort), "-t", "10")
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("baresip hung: %s", lastLines(string(out), 30))
	}
	logs := vb.logs()
	if !strings.Contains(logs, `"transport":"TLS"`) || !strings.Contains(logs, `"srtp":true`) {
		t.Fatalf("voicebot did not take a TLS call with SRTP:\n%s", lastLines(string(out), 30))
	}
	decs, _ := filepath.Glob(filepath.Join(phone.recordings, "dump-*-dec.wav"))
	if len(decs) == 0 {
		t.Fatalf("baresip recorded nothing:\n%s", lastLines(string(out), 30))
	}
	heard, _, err := readWAV(decs[0])
	if err != nil {
		t.Fatal(err)
	}
	greeting := media.PCMU.Decode(nil, media.PCMU.Encode(nil, downsample(greetingPCM())))
	best, off := testpeer.BestCorrelation(heard, loudest(greeting, 8000))
	t.Logf("over TLS+SRTP: greeting found at %.2f s, correlation %.3f", float64(off)/8000, best)
	if best < 0.8 {
		t.Errorf("baresip did not hear the greeting through SRTP (correlation %.3f)\n%s", best, lastLines(string(out), 30))
	}
	if strings.Contains(logs, `"srtp_failed"`) && !strings.Contains(logs, `"srtp_failed":0`) {
		t.Error("packets failed SRTP checks")
	}
}
