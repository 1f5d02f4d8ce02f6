// The classic TCP server, in Go's net, as the interop peer for sockbox's guest:
// listen on the address given, accept one connection, read into a 1024-byte buffer,
// print what came, reply "Hello, World!", close. It announces its address first so
// tests can bind port 0.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
	defer ln.Close()
	fmt.Println("listening on", ln.Addr())

	conn, err := ln.Accept()
	if err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
	defer conn.Close()

	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
	fmt.Println("Received:", string(buf[:n]))

	if _, err := conn.Write([]byte("Hello, World!")); err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
}
