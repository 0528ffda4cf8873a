package pagemem

// MinKernel is the oldest Linux release the userfaultfd backend works on:
// write protection of shared memory (UFFD_FEATURE_WP_HUGETLBFS_SHMEM) came
// in 5.19. The README and the tutorial quote it; a test keeps them equal.
const MinKernel = "5.19"
