FROM alpine
CMD ["x\u0000y"]
