// The classic TCP client, in Go's net, as the interop peer for sockbox's guest:
// dial the address given, write "Hello, World!", read the reply into a 1024-byte
// buffer, print it, close.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	conn, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
	defer conn.Close()

	if _, err := conn.Write([]byte("Hello, World!")); err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}

	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		fmt.Println("Error:", err)
		os.Exit(1)
	}
	fmt.Println("Received:", string(buf[:n]))
}
