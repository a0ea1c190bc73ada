module memtool

go 1.26
