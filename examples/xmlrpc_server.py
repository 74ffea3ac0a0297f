"""The classic stdlib XML-RPC server, on Torsion's reactor: only the import changed.

Run it, then from another shell::

    python -c "import xmlrpc.client as c; print(c.ServerProxy('http://localhost:8000').is_even(4))"
"""

from protocols.xmlrpc.server import SimpleXMLRPCServer


def is_even(n):
    return n % 2 == 0


server = SimpleXMLRPCServer(("localhost", 8000))
print("Listening on port 8000...")
server.register_function(is_even, "is_even")
server.serve_forever()
