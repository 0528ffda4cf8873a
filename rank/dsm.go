package rank

import (
	"context"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
)

// newMemory creates this rank's shared region through dsm's hooks (the
// plumbing dsm does not export to programs).
func newMemory(cfg dsmhook.Config) (*dsm.Memory, error) {
	m, err := dsmhook.New(cfg)
	if err != nil {
		return nil, err
	}
	return m.(*dsm.Memory), nil
}

func memEndpoint(m *dsm.Memory) string { return dsmhook.Endpoint(m) }

func memConnect(m *dsm.Memory, ctx context.Context, addrs []string) error {
	return dsmhook.Connect(m, ctx, addrs)
}
