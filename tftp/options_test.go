package tftp

import (
	"reflect"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	lim := limits{maxBlock: 1468, maxWindow: 64, timeout: time.Second}
	base := params{blockSize: 512, windowSize: 1, timeout: time.Second}
	with := func(f func(*params)) params { p := base; f(&p); return p }
	cases := []struct {
		name string
		opts []option
		size int64
		want params
	}{
		{"no options", nil, 100, base},
		{"pxe rom: tsize and blksize", []option{{"tsize", "0"}, {"blksize", "1456"}}, 74213, with(func(p *params) {
			p.blockSize = 1456
			p.oack = []option{{"tsize", "74213"}, {"blksize", "1456"}}
		})},
		{"names case-insensitive, answered in lower case", []option{{"BLKSIZE", "1024"}, {"WindowSize", "4"}}, 1, with(func(p *params) {
			p.blockSize, p.windowSize = 1024, 4
			p.oack = []option{{"blksize", "1024"}, {"windowsize", "4"}}
		})},
		{"blksize clamped to server cap", []option{{"blksize", "65464"}}, 1, with(func(p *params) {
			p.blockSize = 1468
			p.oack = []option{{"blksize", "1468"}}
		})},
		{"blksize over RFC max clamped", []option{{"blksize", "99999"}}, 1, with(func(p *params) {
			p.blockSize = 1468
			p.oack = []option{{"blksize", "1468"}}
		})},
		{"blksize minimum", []option{{"blksize", "8"}}, 1, with(func(p *params) {
			p.blockSize = 8
			p.oack = []option{{"blksize", "8"}}
		})},
		{"blksize below 8 ignored", []option{{"blksize", "7"}}, 1, base},
		{"blksize not a number ignored", []option{{"blksize", "1k"}}, 1, base},
		{"blksize signed ignored", []option{{"blksize", "+512"}}, 1, base},
		{"blksize empty ignored", []option{{"blksize", ""}}, 1, base},
		{"blksize overflow ignored", []option{{"blksize", "99999999999999999999"}}, 1, base},
		{"timeout echoed", []option{{"timeout", "6"}}, 1, with(func(p *params) {
			p.timeout = 6 * time.Second
			p.oack = []option{{"timeout", "6"}}
		})},
		{"timeout 0 ignored", []option{{"timeout", "0"}}, 1, base},
		{"timeout 256 ignored", []option{{"timeout", "256"}}, 1, base},
		{"tsize reports size whatever was sent", []option{{"tsize", "12"}}, 850528, with(func(p *params) {
			p.oack = []option{{"tsize", "850528"}}
		})},
		{"tsize of empty file", []option{{"tsize", "0"}}, 0, with(func(p *params) {
			p.oack = []option{{"tsize", "0"}}
		})},
		{"tsize garbage ignored", []option{{"tsize", "x"}}, 5, base},
		{"windowsize clamped", []option{{"windowsize", "65535"}}, 1, with(func(p *params) {
			p.windowSize = 64
			p.oack = []option{{"windowsize", "64"}}
		})},
		{"windowsize 0 ignored", []option{{"windowsize", "0"}}, 1, base},
		{"windowsize 65536 ignored", []option{{"windowsize", "65536"}}, 1, base},
		{"unknown options not echoed", []option{{"multicast", ""}, {"utimeout", "1000"}, {"rollover", "0"}}, 1, base},
		{"repeated option counts once", []option{{"blksize", "1024"}, {"blksize", "512"}}, 1, with(func(p *params) {
			p.blockSize = 1024
			p.oack = []option{{"blksize", "1024"}}
		})},
		{"curl's request", []option{{"tsize", "0"}, {"blksize", "512"}, {"timeout", "6"}}, 10, with(func(p *params) {
			p.timeout = 6 * time.Second
			p.oack = []option{{"tsize", "10"}, {"blksize", "512"}, {"timeout", "6"}}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := negotiate(tc.opts, tc.size, lim); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestServerConfigDefaults(t *testing.T) {
	cases := []struct {
		srv  *Server
		want config
	}{
		{&Server{}, config{512, 128, 2 * time.Second, 0, 5, DefaultMaxIdle, 10 * time.Second, limits{1468, 64, time.Second}}},
		// MaxPending above MaxTransfers is MaxTransfers.
		{&Server{MaxTransfers: 3, MaxPending: 10, PendingTimeout: time.Second, MaxPerClient: 2, Retries: 2, MaxBlockSize: 100000, MaxWindowSize: 100000, Timeout: time.Minute, DrainTimeout: time.Minute},
			config{3, 3, time.Second, 2, 2, DefaultMaxIdle, time.Minute, limits{65464, 65535, time.Minute}}},
		{&Server{MaxBlockSize: 4, MaxTransfers: -1, MaxPending: -1, PendingTimeout: -1, MaxPerClient: -3, DrainTimeout: -1}, config{512, 128, 2 * time.Second, 0, 5, DefaultMaxIdle, -1, limits{8, 64, time.Second}}},
	}
	for _, tc := range cases {
		if got := tc.srv.config(); got != tc.want {
			t.Errorf("got %+v, want %+v", got, tc.want)
		}
	}
}
