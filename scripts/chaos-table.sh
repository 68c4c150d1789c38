#!/bin/sh
# Turns the CHAOS lines of `go test -run TestChaos -v ./e2e` (stdin) into
# the rows of docs/reliability.md's table (the status column, pass or
# pending, is the test's verdict and kept by hand):
#   go test -run TestChaos -count=1 -v ./e2e | scripts/chaos-table.sh
awk '/ CHAOS scenario=/ {
	delete f
	for (i = 1; i <= NF; i++) {
		n = index($i, "=")
		if (n > 0) f[substr($i, 1, n - 1)] = substr($i, n + 1)
	}
	printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | ? | `go test -run TestChaos/%s -count=1 -v ./e2e` |\n", f["scenario"], f["sent"], f["acked"], f["lost"], f["dup"], f["unseen"], f["errors"], f["phantom"], f["recovery"], f["lat_p99"], f["scenario"]
}'
