// Package modules holds the example modules of the embedded gateway, one
// package each: orders (stateless), cart (stateful), ticker (events and
// callbacks) and chaos (faults on demand). Each has a Module constructor
// returning the registered module, and every result names the gateway that
// produced it (Info.Gateway), so that a bench can count what each gateway
// really served.
package modules
