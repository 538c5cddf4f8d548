#!/usr/bin/env bash
# End-to-end: the EC2 networking model through the real aws CLI. The default network,
# creating and deleting VPCs, subnets and security groups with their rules, AWS's errors,
# and a created VPC surviving kill -9.
source "$(dirname "$0")/lib.sh"

start_berth

# ---- the default network, as AWS gives every account and region ----
expect_eq "default VPC CIDR" "172.31.0.0/16" \
  "$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].CidrBlock' --output text)"
DEFAULT_VPC="$(awsb ec2 describe-vpcs --query 'Vpcs[?IsDefault].VpcId' --output text)"
expect_eq "default VPC id shape" "ok" "$([[ "$DEFAULT_VPC" =~ ^vpc-[0-9a-f]{17}$ ]] && echo ok || echo "$DEFAULT_VPC")"
expect_eq "default subnets" "172.31.0.0/20 us-east-1a 4091 True True
172.31.16.0/20 us-east-1b 4091 True True
172.31.32.0/20 us-east-1c 4091 True True" \
  "$(awsb ec2 describe-subnets --filters Name=vpc-id,Values="$DEFAULT_VPC" \
      --query 'Subnets[].[CidrBlock,AvailabilityZone,AvailableIpAddressCount,DefaultForAz,MapPublicIpOnLaunch]' --output text \
      | sort | tr '\t' ' ')"
expect_eq "subnet filter by zone" "172.31.16.0/20" \
  "$(awsb ec2 describe-subnets --filters Name=availability-zone,Values=us-east-1b Name=default-for-az,Values=true --query 'Subnets[0].CidrBlock' --output text)"
DEFAULT_SG="$(awsb ec2 describe-security-groups --filters Name=group-name,Values=default Name=vpc-id,Values="$DEFAULT_VPC" --query 'SecurityGroups[0].GroupId' --output text)"
expect_eq "default group description" "default VPC security group" \
  "$(awsb ec2 describe-security-groups --group-ids "$DEFAULT_SG" --query 'SecurityGroups[0].Description' --output text)"
expect_eq "default group ingress from itself" "-1 $DEFAULT_SG" \
  "$(awsb ec2 describe-security-groups --group-ids "$DEFAULT_SG" --query 'SecurityGroups[0].IpPermissions[0].[IpProtocol,UserIdGroupPairs[0].GroupId]' --output text | tr '\t' ' ')"
expect_eq "default group egress to anywhere" "-1 0.0.0.0/0" \
  "$(awsb ec2 describe-security-groups --group-ids "$DEFAULT_SG" --query 'SecurityGroups[0].IpPermissionsEgress[0].[IpProtocol,IpRanges[0].CidrIp]' --output text | tr '\t' ' ')"
expect_eq "availability zones" "us-east-1a use1-az1 available
us-east-1b use1-az2 available
us-east-1c use1-az3 available" \
  "$(awsb ec2 describe-availability-zones --query 'AvailabilityZones[].[ZoneName,ZoneId,State]' --output text | tr '\t' ' ')"
expect_eq "account attribute default-vpc" "$DEFAULT_VPC" \
  "$(awsb ec2 describe-account-attributes --attribute-names default-vpc --query 'AccountAttributes[0].AttributeValues[0].AttributeValue' --output text)"
expect_eq "account attribute supported-platforms" "VPC" \
  "$(awsb ec2 describe-account-attributes --query "AccountAttributes[?AttributeName=='supported-platforms'].AttributeValues[0].AttributeValue" --output text)"
expect_eq "other regions get their own default VPC" "172.31.0.0/16" \
  "$(awsb --region eu-west-1 ec2 describe-vpcs --query 'Vpcs[0].CidrBlock' --output text)"
expect_eq "other region's zones" "euw1-az1" \
  "$(awsb --region eu-west-1 ec2 describe-availability-zones --query 'AvailabilityZones[0].ZoneId' --output text)"

# ---- VPCs and subnets ----
VPC="$(awsb ec2 create-vpc --cidr-block 10.0.0.0/16 \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=e2e}]' --query 'Vpc.VpcId' --output text)"
expect_eq "created VPC by tag" "$VPC 10.0.0.0/16 False available" \
  "$(awsb ec2 describe-vpcs --filters Name=tag:Name,Values=e2e --query 'Vpcs[0].[VpcId,CidrBlock,IsDefault,State]' --output text | tr '\t' ' ')"
expect_error "VPC CIDR too large" InvalidVpc.Range awsb ec2 create-vpc --cidr-block 10.0.0.0/8
expect_error "VPC CIDR malformed" InvalidParameterValue awsb ec2 create-vpc --cidr-block 10.0.0.0/33
expect_error "unknown VPC id" InvalidVpcID.NotFound awsb ec2 describe-vpcs --vpc-ids vpc-0123456789abcdef0
expect_error "malformed VPC id" InvalidVpcID.Malformed awsb ec2 describe-vpcs --vpc-ids nonsense

SUBNET="$(awsb ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.0.1.0/24 --availability-zone us-east-1b --query 'Subnet.SubnetId' --output text)"
expect_eq "created subnet" "10.0.1.0/24 us-east-1b 251 False" \
  "$(awsb ec2 describe-subnets --subnet-ids "$SUBNET" --query 'Subnets[0].[CidrBlock,AvailabilityZone,AvailableIpAddressCount,DefaultForAz]' --output text | tr '\t' ' ')"
expect_error "subnet overlaps" InvalidSubnet.Conflict awsb ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.0.1.128/25
expect_error "subnet outside VPC" InvalidSubnet.Range awsb ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.1.0.0/24
expect_error "subnet in unknown VPC" InvalidVpcID.NotFound awsb ec2 create-subnet --vpc-id vpc-0123456789abcdef0 --cidr-block 10.0.2.0/24
expect_error "subnet in unknown zone" InvalidParameterValue awsb ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.0.2.0/24 --availability-zone us-east-1z
expect_error "unknown subnet id" InvalidSubnetID.NotFound awsb ec2 describe-subnets --subnet-ids subnet-0123456789abcdef0

# ---- security groups and rules ----
SG="$(awsb ec2 create-security-group --group-name web --description "web servers" --vpc-id "$VPC" --query GroupId --output text)"
expect_eq "group id shape" "ok" "$([[ "$SG" =~ ^sg-[0-9a-f]{17}$ ]] && echo ok || echo "$SG")"
expect_error "duplicate group" InvalidGroup.Duplicate awsb ec2 create-security-group --group-name web --description again --vpc-id "$VPC"
expect_eq "new group allows all egress" "-1 0.0.0.0/0" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'SecurityGroups[0].IpPermissionsEgress[0].[IpProtocol,IpRanges[0].CidrIp]' --output text | tr '\t' ' ')"
expect_eq "new VPC has its own default group" "1" \
  "$(awsb ec2 describe-security-groups --filters Name=vpc-id,Values="$VPC" Name=group-name,Values=default --query 'length(SecurityGroups)' --output text)"

RULE="$(awsb ec2 authorize-security-group-ingress --group-id "$SG" --protocol tcp --port 80 --cidr 0.0.0.0/0 --query 'SecurityGroupRules[0].SecurityGroupRuleId' --output text)"
expect_eq "rule id shape" "ok" "$([[ "$RULE" =~ ^sgr-[0-9a-f]{17}$ ]] && echo ok || echo "$RULE")"
awsb ec2 authorize-security-group-ingress --group-id "$SG" \
  --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=10.0.0.0/8,Description=internal}]' >/dev/null
expect_eq "ingress rules" "tcp 443 443 10.0.0.0/8 internal
tcp 80 80 0.0.0.0/0 None" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,IpRanges[0].CidrIp,IpRanges[0].Description]' --output text | sort | tr '\t' ' ')"
expect_error "duplicate rule" InvalidPermission.Duplicate awsb ec2 authorize-security-group-ingress --group-id "$SG" --protocol tcp --port 80 --cidr 0.0.0.0/0
expect_error "bad rule CIDR" InvalidParameterValue awsb ec2 authorize-security-group-ingress --group-id "$SG" --protocol tcp --port 81 --cidr 1.2.3.4/99
expect_error "rule on unknown group" InvalidGroup.NotFound awsb ec2 authorize-security-group-ingress --group-id sg-0123456789abcdef0 --protocol tcp --port 80 --cidr 0.0.0.0/0
expect_eq "describe-security-group-rules" "3" \
  "$(awsb ec2 describe-security-group-rules --filters Name=group-id,Values="$SG" --query 'length(SecurityGroupRules)' --output text)"
expect_eq "rule by id" "80 0.0.0.0/0 False" \
  "$(awsb ec2 describe-security-group-rules --security-group-rule-ids "$RULE" --query 'SecurityGroupRules[0].[FromPort,CidrIpv4,IsEgress]' --output text | tr '\t' ' ')"
awsb ec2 authorize-security-group-egress --group-id "$SG" --ip-permissions "IpProtocol=tcp,FromPort=5432,ToPort=5432,UserIdGroupPairs=[{GroupId=$SG}]" >/dev/null
expect_eq "egress to own group" "$SG" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'SecurityGroups[0].IpPermissionsEgress[?FromPort==`5432`].UserIdGroupPairs[0].GroupId' --output text)"

awsb ec2 revoke-security-group-ingress --group-id "$SG" --protocol tcp --port 80 --cidr 0.0.0.0/0 >/dev/null
expect_eq "revoked by properties" "443" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'SecurityGroups[0].IpPermissions[].FromPort' --output text)"
expect_error "revoke missing rule (non-default VPC)" InvalidPermission.NotFound \
  awsb ec2 revoke-security-group-ingress --group-id "$SG" --protocol tcp --port 80 --cidr 0.0.0.0/0
RULE443="$(awsb ec2 describe-security-group-rules --filters Name=group-id,Values="$SG" --query 'SecurityGroupRules[?FromPort==`443`].SecurityGroupRuleId' --output text)"
awsb ec2 revoke-security-group-ingress --group-id "$SG" --security-group-rule-ids "$RULE443" >/dev/null
expect_eq "revoked by rule id" "0" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'length(SecurityGroups[0].IpPermissions)' --output text)"
expect_error "revoke unknown rule id" InvalidSecurityGroupRuleId.NotFound \
  awsb ec2 revoke-security-group-ingress --group-id "$SG" --security-group-rule-ids "$RULE443"

# ---- tags ----
awsb ec2 create-tags --resources "$SUBNET" "$SG" --tags Key=team,Value=blue >/dev/null
expect_eq "tags on subnet and group" "$SG security-group team blue
$SUBNET subnet team blue" \
  "$(awsb ec2 describe-tags --filters Name=key,Values=team --query 'Tags[].[ResourceId,ResourceType,Key,Value]' --output text | sort | tr '\t' ' ')"
awsb ec2 delete-tags --resources "$SUBNET" --tags Key=team >/dev/null
expect_eq "tag deleted" "0" \
  "$(awsb ec2 describe-subnets --filters Name=tag-key,Values=team --query 'length(Subnets)' --output text)"
expect_error "tag unknown resource" InvalidVpcID.NotFound awsb ec2 create-tags --resources vpc-0123456789abcdef0 --tags Key=a,Value=b

# ---- deletion and dependencies ----
expect_error "delete VPC with dependencies" DependencyViolation awsb ec2 delete-vpc --vpc-id "$VPC"
expect_error "delete default group" CannotDelete awsb ec2 delete-security-group --group-name default
expect_error "delete unknown group" InvalidGroup.NotFound awsb ec2 delete-security-group --group-id sg-0123456789abcdef0
expect_error "delete unknown subnet" InvalidSubnetID.NotFound awsb ec2 delete-subnet --subnet-id subnet-0123456789abcdef0
expect_error "unimplemented operation" NotImplemented awsb ec2 describe-instances

# ---- durability: a created VPC survives kill -9 ----
KEEP="$(awsb ec2 create-vpc --cidr-block 192.168.0.0/16 --query 'Vpc.VpcId' --output text)"
kill9_berth
start_berth
expect_eq "VPC survives kill -9" "192.168.0.0/16" \
  "$(awsb ec2 describe-vpcs --vpc-ids "$KEEP" --query 'Vpcs[0].CidrBlock' --output text)"
expect_eq "default VPC unchanged after restart" "$DEFAULT_VPC" \
  "$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)"
expect_eq "rules survive kill -9" "$SG" \
  "$(awsb ec2 describe-security-groups --group-ids "$SG" --query 'SecurityGroups[0].IpPermissionsEgress[?FromPort==`5432`].UserIdGroupPairs[0].GroupId' --output text)"

# Now tear the VPC down in order.
awsb ec2 delete-subnet --subnet-id "$SUBNET" >/dev/null
expect_error "group still in VPC" DependencyViolation awsb ec2 delete-vpc --vpc-id "$VPC"
awsb ec2 delete-security-group --group-id "$SG" >/dev/null
awsb ec2 delete-vpc --vpc-id "$VPC" >/dev/null
expect_error "deleted VPC is gone" InvalidVpcID.NotFound awsb ec2 describe-vpcs --vpc-ids "$VPC"
awsb ec2 delete-vpc --vpc-id "$KEEP" >/dev/null
expect_eq "only the default VPC is left" "$DEFAULT_VPC" \
  "$(awsb ec2 describe-vpcs --query 'Vpcs[].VpcId' --output text)"

# Raw form requests an SDK would never send get EC2's own errors.
ec2_raw() { curl -s -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0' --data "$1" "$BERTH_URL/"; }
expect_eq "missing required parameter" "MissingParameter" "$(ec2_raw 'Action=DeleteVpc&Version=2016-11-15' | sed -n 's/.*<Code>\(.*\)<\/Code>.*/\1/p')"
expect_eq "unknown parameter" "UnknownParameter" "$(ec2_raw 'Action=DescribeVpcs&Version=2016-11-15&Bogus=1' | sed -n 's/.*<Code>\(.*\)<\/Code>.*/\1/p')"
expect_eq "unknown action" "InvalidAction" "$(ec2_raw 'Action=LaunchRockets&Version=2016-11-15' | sed -n 's/.*<Code>\(.*\)<\/Code>.*/\1/p')"
expect_eq "bad integer" "InvalidParameterValue" "$(ec2_raw 'Action=DescribeVpcs&Version=2016-11-15&MaxResults=abc' | sed -n 's/.*<Code>\(.*\)<\/Code>.*/\1/p')"
expect_eq "not implemented" "NotImplemented" "$(ec2_raw 'Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1' | sed -n 's/.*<Code>\(.*\)<\/Code>.*/\1/p')"

finish
