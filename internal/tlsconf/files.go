package tlsconf

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// reloadCheckEvery bounds how often a handshake looks at the files' stamps.
const reloadCheckEvery = time.Second

// certFiles serves the certificate of a cert and key file pair, read again
// when either file's modification time or size changes (a renewed
// certificate, a Kubernetes Secret's symlink swap). A pair that fails to
// load (the cert written, the key not yet) keeps the previous certificate
// in service and is tried again at the next check.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the pair that cert came from, or that last failed
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows symlinks
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// loadCertFiles reads the pair once; an error here stops the start.
func loadCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file, tls.key_file: %w", err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

func (c *certFiles) stamps() ([2]fileStamp, error) {
	cs, err := stampOf(c.certFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("tls.cert_file: %w", err)
	}
	ks, err := stampOf(c.keyFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("tls.key_file: %w", err)
	}
	return [2]fileStamp{cs, ks}, nil
}

// GetCertificate is the tls.Config callback.
func (c *certFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= reloadCheckEvery {
		c.checked = now
		c.reloadLocked()
	}
	return c.cert, nil
}

func (c *certFiles) reloadLocked() {
	stamp, err := c.stamps()
	if err != nil || stamp == c.stamp {
		if err != nil && c.stamp != ([2]fileStamp{}) {
			c.log.Warn("tls: certificate files unreadable; serving the previous certificate", "err", err)
			c.stamp = [2]fileStamp{}
		}
		return
	}
	c.stamp = stamp // a failing pair is reported once, not at every check
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("tls: changed certificate files do not load; serving the previous certificate", "err", err)
		return
	}
	c.cert = &cert
	c.log.Info("tls: certificate files reloaded", "cert_file", c.certFile, "not_after", cert.Leaf.NotAfter)
}
