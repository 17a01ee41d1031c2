# rdma-xfer: nothing built yet
