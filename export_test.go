package runnel

// MainWith lets the external tests drive Main with their own arguments,
// environment and output streams.
var MainWith = mainWith
