@echo off
rem 5.XSeg.generic) data_dst whole faceset generic mask: give every face of data_dst/aligned an
rem XSeg mask in one step, without labels: train XSeg --generic on the faceset itself (3000
rem iterations into workspace/model; targets made from the landmarks with synthetic occluders; any
rem labels are used too), then apply it. Extra arguments go to the training (e.g. --target-iteration
rem 500 for a quicker, rougher mask); set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_dst\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model XSeg ^
    --generic ^
    --silent-start ^
    --target-iteration 3000 ^
    %*
if not errorlevel 1 "%VENV_PY%" "%REPO_ROOT%\main.py" xseg apply ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model"
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
