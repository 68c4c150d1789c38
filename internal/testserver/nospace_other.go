//go:build !unix

package testserver

func isNoSpace(error) bool { return false }
