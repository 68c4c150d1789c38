package httpapi

import (
	"net/http"
	"time"
)

// Uploads (POST /api/attachments) take longer than BodyDeadline's budget:
// 25 MiB at 1 MiB/s is 25 s. The handler, or the gateway before it
// proxies one, gives the body time for its size at MinUploadRate.

// MinUploadRate is the slowest upload, in bytes per second, that
// ExtendBodyDeadline gives time for.
const MinUploadRate = 64 << 10

// uploadGrace is the deadline's part that does not depend on the size.
const uploadGrace = 30 * time.Second

// ExtendBodyDeadline sets the read deadline of w's connection to now +
// 30 s + size / MinUploadRate, for a body of size bytes (the caller
// bounds size: it is what the client declared, at most the upload
// limit). BodyDeadline clears it once the body is read to its end.
func ExtendBodyDeadline(w http.ResponseWriter, size int64) {
	d := uploadGrace + time.Duration(size/MinUploadRate)*time.Second
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}
