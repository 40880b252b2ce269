// Package connector is the home of Runnel's sources and sinks, one package
// each: file (lines and CSV of files and directories), stdio (standard
// input and output), poll (a function called at an interval), demo
// (seeded generated data) and kafka. runneltest has a list source and a
// collecting sink for tests.
//
// docs/connectors.md lists every connector's guarantee (exactly-once or
// at-least-once), resume position and options. This package holds no code:
// its examples show how to write your own source with
// runnel.PartitionedInput, compiled and run by go test, and that page
// shows the same code.
package connector
