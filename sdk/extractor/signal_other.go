//go:build !unix

package extractor

func exitOnCPULimit() {}
