package dsm

import (
	"encoding/json"

	"github.com/dsmexec/dsmexec/internal/dsmhook"
)

func (s *sigsegvImpl) pageReport() *dsmhook.PageReport {
	if s.d == nil {
		return nil
	}
	return s.d.rep.snapshot()
}

func (p *uffdImpl) pageReport() *dsmhook.PageReport {
	b, err := p.call(ctlReport, 0)
	if err != nil || len(b) == 0 {
		return nil
	}
	var r dsmhook.PageReport
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}
