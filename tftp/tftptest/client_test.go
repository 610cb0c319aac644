package tftptest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

// fakeServer answers one RRQ with the packets script returns, from a
// fresh transfer socket, and reports what the client sent it back.
func fakeServer(t *testing.T, script func(ack []byte) [][]byte) (addr string, got chan []byte) {
	t.Helper()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []byte, 16)
	go func() {
		buf := make([]byte, 1500)
		_, client, err := ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		tid, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return
		}
		defer tid.Close()
		var ack []byte
		for {
			for _, p := range script(ack) {
				tid.WriteToUDP(p, client)
			}
			tid.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := tid.ReadFromUDP(buf)
			if err != nil {
				return
			}
			ack = append([]byte(nil), buf[:n]...)
			got <- ack
		}
	}()
	return ln.LocalAddr().String(), got
}

func oackPacket(opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, opOACK)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	return b
}

func dataPacket(block uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opDATA), block)
	return append(b, payload...)
}

// A file whose size disagrees with the OACK's tsize is refused.
func TestTSizeMismatch(t *testing.T) {
	addr, _ := fakeServer(t, func(ack []byte) [][]byte {
		if ack == nil {
			return [][]byte{oackPacket("tsize", "10")}
		}
		return [][]byte{dataPacket(1, []byte("short"))}
	})
	res, err := (&Client{Options: []Option{{Name: "tsize", Value: "0"}}, Timeout: time.Second}).Get(addr, "f")
	if !errors.Is(err, ErrMismatch) || res.Size != 5 {
		t.Fatalf("Get = %d bytes, %v; want ErrMismatch after 5 bytes", res.Size, err)
	}
}

// A file larger than Buf is refused, and the server is told.
func TestBufOverflow(t *testing.T) {
	addr, got := fakeServer(t, func(ack []byte) [][]byte {
		return [][]byte{dataPacket(1, bytes.Repeat([]byte("x"), 100))}
	})
	_, err := (&Client{Buf: make([]byte, 50), Timeout: time.Second}).Get(addr, "f")
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Get = %v, want ErrMismatch", err)
	}
	if p := <-got; binary.BigEndian.Uint16(p) != opERROR {
		t.Errorf("client sent %q, want an ERROR", p)
	}
}

// Past Deadline the transfer is abandoned with an ERROR to the server.
func TestDeadline(t *testing.T) {
	addr, got := fakeServer(t, func(ack []byte) [][]byte {
		if ack == nil {
			return [][]byte{dataPacket(1, bytes.Repeat([]byte("x"), 512))}
		}
		return nil // then silence
	})
	res, err := (&Client{Deadline: time.Now().Add(300 * time.Millisecond), Timeout: 5 * time.Second}).Get(addr, "f")
	if !errors.Is(err, ErrDeadline) || res.Size != 512 {
		t.Fatalf("Get = %d bytes, %v; want ErrDeadline after 512", res.Size, err)
	}
	if p := <-got; binary.BigEndian.Uint16(p) != opACK {
		t.Errorf("first packet back %q, want ACK 1", p)
	}
	if p := <-got; binary.BigEndian.Uint16(p) != opERROR {
		t.Errorf("client sent %q after the deadline, want an ERROR", p)
	}
}
