FROM alpine
onbuild from busybox
