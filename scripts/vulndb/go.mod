module github.com/graftlb/graftlb/scripts/vulndb

go 1.26.0
