// The Go echo server `sockbox bench --target go=ADDR` compares against: a goroutine
// per connection and io.Copy, as Go's net is written to be used.
//
//	go run bench/go/echo.go 127.0.0.1:0
//
// prints `listening on ADDR` and serves until stopped.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
		go func(c net.Conn) {
			defer c.Close()
			io.Copy(c, c)
		}(conn)
	}
}
