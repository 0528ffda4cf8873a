// Package falseshare finds falsely shared pages of the shared memory:
// pages that change owner often although the ranks writing them write
// disjoint bytes. It is pure: dsm records, per page, the ownership
// changes and (at each revocation of write access, with Diff against a
// copy of the page taken when access was granted) the byte ranges each
// rank wrote; Detect ranks the pages and flags false sharing with advice.
//
// Usage:
//
//	rs := falseshare.Diff(twin, page, 16)   // at revocation: what this rank wrote
//	fs := falseshare.Detect(pages, pageSize, falseshare.Threshold, 10)
//	for _, f := range fs {
//		if f.FalseSharing {
//			fmt.Println(f.Advice) // "... pad each rank's data to the page size (4096 bytes), or dsm.Alloc separate arrays"
//		}
//	}
package falseshare
