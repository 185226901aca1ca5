#!/usr/bin/env python3
"""Drives moto's EC2 endpoint with boto3, an AWS client that is not hostledger's, for the
AWS provider's end-to-end tests.

usage: ec2ctl.py ENDPOINT REGION launch NAME ROLE   -> prints the new instance id
       ec2ctl.py ENDPOINT REGION stop|start|terminate INSTANCE_ID
       ec2ctl.py ENDPOINT REGION tag INSTANCE_ID KEY VALUE
"""
import sys

import boto3


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    endpoint, region, command, args = argv[1], argv[2], argv[3], argv[4:]
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    if command == "launch":
        name, role = args
        image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["*"]}])["Images"][0]
        tags = [
            {"Key": "Name", "Value": name},
            {"Key": "role", "Value": role},
            {"Key": "team", "Value": "platform"},
        ]
        out = ec2.run_instances(
            ImageId=image["ImageId"],
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        print(out["Instances"][0]["InstanceId"])
    elif command == "stop":
        ec2.stop_instances(InstanceIds=args)
    elif command == "start":
        ec2.start_instances(InstanceIds=args)
    elif command == "terminate":
        ec2.terminate_instances(InstanceIds=args)
    elif command == "tag":
        instance, key, value = args
        ec2.create_tags(Resources=[instance], Tags=[{"Key": key, "Value": value}])
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
