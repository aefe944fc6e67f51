package sip

import (
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// dialog is what RFC 3261 §12 keeps of an established call, whichever side
// placed it: who we and the peer are, where in-dialog requests go, and the
// sequence numbers on both sides. It builds our in-dialog requests (BYE,
// REFER, UPDATE, re-INVITE).
type dialog struct {
	callID    string
	local     sip.Uri // our URI: the From of our requests
	localTag  string
	remote    sip.Uri
	remoteTag string
	// target is the peer's Contact; routes the route set (Route header
	// values in order); dest where requests are sent (host:port): the first
	// route when there is one, else where the peer's signalling came from,
	// which works behind NAT where its Contact may not.
	target    sip.Uri
	routes    []string
	dest      string
	transport string

	mu         sync.Mutex
	cseq       uint32 // our last CSeq
	remoteCSeq uint32 // the peer's last in-dialog CSeq
}

// key identifies the dialog as in-dialog requests from the peer name it:
// their From tag is the remote tag, their To tag ours.
func (d *dialog) key() string { return dialogKey(d.callID, d.remoteTag, d.localTag) }

func dialogKey(callID, remoteTag, localTag string) string {
	return callID + "\x00" + remoteTag + "\x00" + localTag
}

// inboundDialog is the dialog of a call the peer placed with invite.
func inboundDialog(invite *sip.Request, localTag string, cseq uint32) *dialog {
	d := &dialog{
		callID:    callID(invite),
		local:     invite.To().Address,
		localTag:  localTag,
		remote:    invite.From().Address,
		transport: invite.Transport(),
		cseq:      cseq,
		dest:      invite.Source(),
	}
	d.remoteTag, _ = invite.From().Params.Get("tag")
	if ct := invite.Contact(); ct != nil {
		d.target = *ct.Address.Clone()
	}
	if cs := invite.CSeq(); cs != nil {
		d.remoteCSeq = cs.SeqNo
	}
	// A UAS's route set is the Record-Route of the request, in order.
	for _, rr := range invite.GetHeaders("Record-Route") {
		d.routes = append(d.routes, rr.Value())
	}
	d.routeDestination()
	return d
}

// outboundDialog is the dialog our invite established with res (a 2xx).
func outboundDialog(invite *sip.Request, res *sip.Response, dest string) *dialog {
	d := &dialog{
		callID:    callID(invite),
		local:     invite.From().Address,
		remote:    invite.To().Address,
		transport: invite.Transport(),
		cseq:      invite.CSeq().SeqNo,
		dest:      dest,
	}
	d.localTag, _ = invite.From().Params.Get("tag")
	d.remoteTag, _ = res.To().Params.Get("tag")
	d.target = invite.Recipient
	if ct := res.Contact(); ct != nil {
		d.target = *ct.Address.Clone()
	}
	// A UAC's route set is the Record-Route of the response, reversed.
	rrs := res.GetHeaders("Record-Route")
	for i := len(rrs) - 1; i >= 0; i-- {
		d.routes = append(d.routes, rrs[i].Value())
	}
	d.routeDestination()
	return d
}

// routeDestination sends requests to the first route, when there is one.
func (d *dialog) routeDestination() {
	if len(d.routes) == 0 {
		return
	}
	var r sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(strings.TrimSpace(d.routes[0]), &r, &params); err == nil && r.Host != "" {
		d.dest = r.HostPort()
		if r.Port == 0 {
			d.dest = r.Host + ":5060"
		}
	}
}

// nextCSeq takes the next sequence number for a request of ours.
func (d *dialog) nextCSeq() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cseq++
	return d.cseq
}

// request builds an in-dialog request (RFC 3261 §12.2.1.1). Via is added
// when it is sent.
func (d *dialog) request(method sip.RequestMethod, userAgent string, contact *sip.ContactHeader) *sip.Request {
	req := sip.NewRequest(method, *d.target.Clone())
	from := &sip.FromHeader{Address: *d.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sip.ToHeader{Address: *d.remote.Clone(), Params: sip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.nextCSeq(), MethodName: method})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	for _, r := range d.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	if contact != nil {
		req.AppendHeader(contact)
	}
	req.AppendHeader(sip.NewHeader("User-Agent", userAgent))
	req.SetTransport(d.transport)
	req.SetDestination(d.dest)
	req.SetBody(nil)
	return req
}

// cseqReorder is how far below the highest sequence number seen an
// in-dialog request may be and still be taken. sipgo hands each request to
// its own goroutine, so a burst sent in order (INFO keys) reaches us
// slightly out of order; only a request further back is stale.
const cseqReorder = 64

// acceptCSeq checks an in-dialog request's sequence number: one well below
// the last is out of order (RFC 3261 §12.2.2 asks for a 500).
func (d *dialog) acceptCSeq(req *sip.Request) bool {
	cs := req.CSeq()
	if cs == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remoteCSeq > cseqReorder && cs.SeqNo < d.remoteCSeq-cseqReorder {
		return false
	}
	d.remoteCSeq = max(d.remoteCSeq, cs.SeqNo)
	return true
}
