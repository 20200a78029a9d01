package e2e

// raceBuild: the tests run under the race detector (race_test.go).
var raceBuild bool
