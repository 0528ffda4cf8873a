// Package shm is a single-producer single-consumer byte-stream ring pair in
// shared memory between two processes of one user on one host: the
// transport for dsmexec's wire frames between ranks on the same host.
package shm
